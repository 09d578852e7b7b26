/**
 * `node:http`, loaded through require. On Node 22 (the image's runtime) an ESM import of it
 * reads every export, including the lazy `WebSocket`, `CloseEvent` and `MessageEvent` getters,
 * and those load undici: about 11 MB of RSS and 2.5 MB of heap for a client Portico never uses.
 */
import type * as Http from 'node:http';
import { createRequire } from 'node:module';

export const http = createRequire(import.meta.url)('node:http') as typeof Http;
