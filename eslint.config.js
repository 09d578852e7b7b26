import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.cache/', 'bench/results/', 'hack/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // client-node 1.x declares its models as classes, but Portico sends and receives plain JSON
      // (src/kube/rest.ts): object literals and spreads of them are the correct use.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      '@typescript-eslint/no-misused-spread': 'off',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }, { selector: 'TSEnumDeclaration', message: 'Use as-const unions.' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/kube/node-http.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'node:http', allowTypeImports: true, message: 'Use src/kube/node-http.ts: an ESM import of node:http loads undici on Node 22 (about 11 MB RSS).' },
            { name: 'prom-client', allowTypeImports: true, message: "Use src/kube/prom.ts: prom-client's index loads its push gateway and default collectors (30-40 ms of every start)." },
          ],
        },
      ],
    },
  },
  // Tool configuration files must default-export.
  { files: ['eslint.config.js', 'vitest.config.ts'], rules: { 'no-restricted-syntax': 'off' } },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
