/**
 * Prints one closing line CI can read — `Tests: N passed, N failed, N skipped` — after
 * Vitest's own summary, and names every skipped test so a skip is never silent.
 */
import type { Reporter, TestModule } from 'vitest/node';

export class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: readonly TestModule[]): void {
    let passed = 0;
    let failed = 0;
    const skipped: string[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped.push(`${module.moduleId}: ${test.fullName}`);
      }
    }
    if (skipped.length > 0) {
      process.stdout.write(`\nSKIPPED (${String(skipped.length)}):\n${skipped.map((s) => `  - ${s}`).join('\n')}\n`);
    }
    process.stdout.write(`\nTests: ${String(passed)} passed, ${String(failed)} failed, ${String(skipped.length)} skipped\n`);
  }
}
