import type { KubeClient, RequestParams } from '../../src/kube/rest.js';

/** A KubeClient that records requests and answers each with an empty object. */
export class RecordingClient implements KubeClient {
  readonly requests: { method: string; path: string; body: unknown }[] = [];

  request<T>(method: string, path: string, params: RequestParams = {}): Promise<T> {
    this.requests.push({ method, path, body: params.body });
    return Promise.resolve({} as T);
  }

  watch(): Promise<void> {
    return Promise.reject(new Error('RecordingClient does not watch'));
  }
}
