// Lint for what the type checker does not catch and crashed the agent before: promises nobody
// awaits or handles (an unhandled rejection), and promises passed where a callback's result is
// ignored (an event listener that throws asynchronously). `npm run lint`, part of `npm test`.
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", ".next/**", "dist/**", "server/db/generated/**", "test-artifacts/**", "next-env.d.ts", "**/*.mjs", "**/*.js"] },
  {
    files: ["**/*.ts", "**/*.tsx"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // node:test's describe/test return promises the runner itself tracks.
      "@typescript-eslint/no-floating-promises": ["error", { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "test", "it", "suite", "before", "after", "beforeEach", "afterEach"] }] }],
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: true, attributes: false } }],
    },
  },
);
