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
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["describe", "test", "it", "suite", "before", "after", "beforeEach", "afterEach"] },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: true, attributes: false } }],
    },
  },
  {
    // A failure is handled, or logged with its stack (bestEffort(log, what) from shared/best-effort.ts
    // at debug, warn/error with { err } where something is left over), never dropped: swallowed
    // clean-ups hid why mounts, veths and temp dirs were left behind (issue 11). A catch block that
    // means to do nothing says why in a comment.
    files: ["agent/**/*.ts", "server/**/*.ts", "shared/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: {
      "no-empty": ["error", { allowEmptyCatch: false }],
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "CallExpression[callee.property.name='catch'] > ArrowFunctionExpression.arguments:matches([body.type='Identifier'][body.name='undefined'], [body.type='Literal'][body.raw='null'], [body.type='BlockStatement'][body.body.length=0], [body.type='UnaryExpression'][body.operator='void'])",
          message:
            'A swallowed failure: use bestEffort(log, "what") (logged at debug with its stack), settled(p) when the failure reaches someone else, or handle it and log { err }.',
        },
      ],
    },
  },
);
