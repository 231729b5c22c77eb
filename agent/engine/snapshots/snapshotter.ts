/**
 * The snapshotter: a container's root filesystem as a writable layer on top of
 * an image's layer chain (after containerd's `snapshots/snapshotter.go`).
 *
 * Concepts:
 * - key: the container ID. One active snapshot per container, named by it.
 * - parent: the chain ID (layers/layer-store.ts) of the image's top layer. The
 *   layers below it come from the layer store; the snapshot adds only an upper
 *   (writable) directory and overlay's work directory. No parent means a
 *   scratch container: an empty root.
 *
 * The snapshotter returns mounts and mounts nothing itself: `prepare()` and
 * `mounts()` describe *how* to mount the root filesystem as plain data
 * (`Mount[]`); whoever needs the filesystem mounted (the runtime, `diff`,
 * `export`) mounts it with `mountAll()` from mount.ts and unmounts it with
 * `unmountAll()`.
 *
 * Life cycle and ownership:
 * 1. `removeStale()` once at start-up, before any `prepare` (deletes what a
 *    crash left of preparations and removals under way).
 * 2. `prepare(key, parent)` builds the snapshot's directories in a private
 *    temporary directory and renames it into place: after a crash a snapshot
 *    either exists complete or not at all. It returns the mounts.
 * 3. `mounts(key)` returns the same mounts again (e.g. after an agent restart).
 *    The parent chain must still exist in the layer store: the image service
 *    must not remove a chain that a snapshot names as its parent.
 * 4. The caller mounts (`mountAll`), runs the container, and unmounts
 *    (`unmountAll`). `upperDir(key)` and `usage(key)` read the container's
 *    changes (diff, commit, `ps -s`); they work mounted or not.
 * 5. `remove(key)` deletes the snapshot. It refuses (Conflict) while the
 *    snapshot is mounted anywhere on the host: the caller must unmount first.
 *    Deleting the upper directory of a live overlay would corrupt the mount.
 *
 * Errors are EngineErrors: InvalidArgument (malformed key or chain ID),
 * AlreadyExists (prepare of an existing key), NotFound (unknown key, or a
 * parent chain missing from the layer store), Conflict (remove while mounted).
 */

/**
 * A filesystem mount as data, in the form `mount -t TYPE -o OPTIONS SOURCE TARGET`.
 * Same shape as containerd's `mount.Mount`, plus `cwd` for relative paths in options.
 */
export interface Mount {
  /** Filesystem type: "overlay", "bind", "tmpfs"… */
  type: string;
  /** What to mount: a device, a directory for binds, or a name for virtual filesystems. */
  source: string;
  /** Where to mount, relative to the target given to `mountAll` (default: the target itself). */
  target?: string;
  /** Mount options, as `-o` takes them (each without commas). */
  options: string[];
  /**
   * Directory to run the mount from: relative paths inside `options` are relative
   * to it (overlay's short lower dir links). Absent: options hold only absolute paths.
   */
  cwd?: string;
}

export interface SnapshotInfo {
  /** The container ID the snapshot belongs to. */
  key: string;
  /** Chain ID of the image's top layer; absent for a scratch snapshot. */
  parent?: string;
  /** ISO 8601 time of `prepare`. */
  created: string;
}

export interface SnapshotUsage {
  /** Bytes of regular files and symlinks in the upper directory, hard links counted once. */
  size: number;
  /** Number of inodes (files, directories, links, whiteouts) in the upper directory. */
  inodes: number;
}

export interface Snapshotter {
  /**
   * Creates the writable snapshot `key` on top of the chain `parentChainId`
   * (undefined: an empty root) and returns how to mount it.
   * @throws AlreadyExists if `key` exists; NotFound if the chain is not in the layer store;
   *   InvalidArgument for a malformed key, or a chain too deep for overlay's mount options.
   *   In every failure case nothing is left on disk.
   */
  prepare(key: string, parentChainId: string | undefined): Promise<Mount[]>;
  /** The mounts of an existing snapshot. @throws NotFound */
  mounts(key: string): Promise<Mount[]>;
  /** The snapshot `key`, or undefined. */
  stat(key: string): Promise<SnapshotInfo | undefined>;
  /** All snapshots (order unspecified). */
  list(): Promise<SnapshotInfo[]>;
  /** Disk use of the snapshot's own changes (its upper directory). @throws NotFound */
  usage(key: string): Promise<SnapshotUsage>;
  /**
   * Absolute path of the snapshot's upper directory: the container's changes,
   * whiteouts in overlay form (0/0 character devices, `trusted.overlay.opaque`).
   * Read-only for the caller. @throws NotFound
   */
  upperDir(key: string): Promise<string>;
  /**
   * Deletes a snapshot. No error if it does not exist.
   * @throws Conflict while it is mounted (unmount it first).
   */
  remove(key: string): Promise<void>;
  /** Start-up cleanup of interrupted prepares and removals. @returns how many leftovers were deleted. */
  removeStale(): Promise<number>;
}
