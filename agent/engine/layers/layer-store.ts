/**
 * The layer store: image layers unpacked on disk, ready to be stacked by
 * overlayfs as lower directories, keyed by chain ID.
 *
 * Concepts (OCI image spec):
 * - diff ID: sha256 of a layer's uncompressed tar. Computed here while the tar
 *   streams through, and checked against the image config's value.
 * - chain ID: names a layer *together with everything below it*:
 *   ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))
 *   (see chain-id.ts). Two images sharing a base share its layers.
 *
 * Each layer holds only its own tar's content (whiteouts in overlay form:
 * 0/0 character devices and `trusted.overlay.opaque=y`), so a layer does not
 * need its parent's files to be unpacked: the layers of one image can be
 * unpacked in parallel, in any order. Only the *record* of a layer names its
 * parent, and the parent need not exist yet when a child is unpacked (a pull
 * unpacks all layers of an image at once); the image service makes an image
 * visible only when its whole chain exists, and `lowerDirs` refuses a broken chain.
 *
 * Life cycle and ownership:
 * 1. `removeStale()` once at start-up, before any unpack (deletes the leftovers
 *    of unpacks and removals that were interrupted by a crash).
 * 2. `unpack()` builds a layer in a private temporary directory and renames it
 *    into place: a layer either exists complete and verified or not at all.
 *    Unpacking a layer that already exists is not an error; the stream is still
 *    consumed (and its diff ID checked), and the existing layer is returned.
 *    (Callers look a layer up first: an existing layer is read only when two
 *    unpacks of it race.)
 *    The caller owns the tar stream it passes; `unpack` consumes it to the end,
 *    or destroys it on failure.
 * 3. `lowerDirs()` gives the snapshotter what it needs to mount a chain; the
 *    store mounts nothing itself.
 * 4. `remove()` deletes a layer. The store does not know which images or
 *    containers use a layer: that is the image service's business (it removes
 *    a chain only when no image names it and no container is mounted on it).
 *    The store only refuses to remove a layer that another layer names as its
 *    parent, so the top of a chain must be removed first.
 *
 * Errors are EngineErrors: InvalidArgument (bad digest string, unsafe or
 * malformed tar, unsupported compression), NotFound (unknown chain, or a broken chain in lowerDirs),
 * DataLoss (diff ID mismatch, truncated tar), Conflict (remove of a parent),
 * Canceled (AbortSignal).
 */
import type { Readable } from "node:stream";

export interface LayerInfo {
  /** `sha256:…` chain ID: the layer's key. */
  chainId: string;
  /** `sha256:…` of this layer's uncompressed tar. */
  diffId: string;
  /** Chain ID of the layer below, absent for a base layer. */
  parent?: string;
  /** Bytes of regular files unpacked in this layer (its own, not its parents'). */
  size: number;
  /** Absolute path of the unpacked content. */
  diffDir: string;
  /** Short id (26 characters) of the layer: `ROOT/l/<link>` points at diffDir. */
  link: string;
}

export interface UnpackParams {
  /** Chain ID of the layer below; must exist. Absent for a base layer. */
  parent?: string;
  /** If given, the tar's sha256 must equal it, or the unpack fails with DataLoss. */
  expectedDiffId?: string;
  /**
   * The stream is the layer blob as stored (gzip, or a plain tar: recognised by its first
   * bytes), not the tar: the store decompresses it itself, off the main thread.
   */
  compressed?: boolean;
  /** Told the length of the uncompressed tar once this unpack has read it all. */
  onTarSize?: (bytes: number) => void;
}

export interface LowerDirs {
  /** Directory to chdir into before mounting: `lowers` are relative to it. */
  cwd: string;
  /** Lower directories for overlay's `lowerdir=`, topmost first, as short relative paths. */
  lowers: string[];
}

export interface LayerStore {
  /** The layer with this chain ID, or undefined. @throws InvalidArgument on a malformed chain ID. */
  get(chainId: string): Promise<LayerInfo | undefined>;
  /** All layers (order unspecified). */
  list(): Promise<LayerInfo[]>;
  /**
   * Unpacks an (already decompressed) layer tar into a new layer whose chain ID
   * is computed from `parent` and the tar's diff ID. See the life cycle above.
   * @throws DataLoss if `expectedDiffId` differs from the tar's digest, or the tar is truncated;
   *   InvalidArgument for an unsafe or malformed tar.
   *   In every failure case nothing is left on disk.
   */
  unpack(params: UnpackParams, tar: Readable, signal?: AbortSignal): Promise<LayerInfo>;
  /**
   * Removes a layer. No error if it does not exist.
   * @throws Conflict if another layer names it as its parent (or one is being unpacked on it).
   */
  remove(chainId: string): Promise<void>;
  /**
   * Overlay lower directories for mounting the chain ending at `chainId`
   * (that layer first, the base layer last), as short links relative to `cwd`
   * so that up to overlay's limit of 500 layers fit in the mount options.
   * The mount must be made with `cwd` as working directory.
   * @throws NotFound if a layer of the chain is missing.
   */
  lowerDirs(chainId: string): Promise<LowerDirs>;
  /** Gets ready for unpacks soon to come (starts worker threads); a hint, no failure. */
  warm(): void;
  /** Start-up cleanup of interrupted unpacks and removals. @returns how many leftovers were deleted. */
  removeStale(): Promise<number>;
}
