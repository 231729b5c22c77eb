/**
 * The versions this agent reports: on the Docker API (`docker version`, `docker info`)
 * and on the console link. scripts/build-agent.mjs stamps BERTH_VERSION into the bundle: it
 * finds this file by its path and the constant by its one-line declaration; keep both.
 */

/** The Docker API version this agent speaks, and the oldest it accepts (docker CLI 20.10 speaks 1.41). */
export const API_VERSION = "1.47";
export const MIN_API_VERSION = "1.24";
export const ENGINE_VERSION = "27.5.0-berth";
export const BERTH_VERSION = "0.1.0";
