/**
 * The engine's errors: EngineError, its kinds and constructors. They live in the leaf
 * module shared/errors.ts because the console reads the same kinds off the link (and the
 * shared reference parser throws them); engine code imports them from here.
 */
export * from "../../shared/errors.ts";
