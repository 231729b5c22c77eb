/**
 * Named volumes: directories that outlive containers, with the semantics of
 * Docker's built-in `local` driver.
 *
 * Concepts:
 * - name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (at least two characters), unique on the
 *   node. A volume created without a name gets a random 64-hex name and is
 *   anonymous: made for one container (an image's VOLUME, `-v /path`), removed
 *   with it by `rm -v` / `--rm`, and the only kind `prune` removes by default
 *   (Docker 23+). Anonymous volumes carry the label `com.docker.volume.anonymous`
 *   as Docker's do.
 * - mountpoint: the directory the runtime bind-mounts into containers.
 * - in use: the store does not know containers. Whoever does (the container
 *   service) passes `inUse` callbacks to the calls that need to know.
 *
 * Life cycle and call order:
 * 1. `create` makes a volume (or returns the existing one of that name, as Docker
 *    does: labels and options of the second request are ignored).
 * 2. When a container is created with a volume mounted at a path, the runtime
 *    calls `populate(name, rootfs, path)` with the container's root filesystem
 *    mounted, before the container starts: a new, empty volume receives the
 *    image's content at that path (Docker's copy-up; skip it for `nocopy`).
 * 3. `remove` refuses a volume in use; `prune` skips those in use.
 *
 * Errors are EngineErrors: InvalidArgument (bad name or option), NotFound
 * (unknown volume), Conflict (in use, or something is mounted inside it),
 * DataLoss (corrupt metadata). Messages are Docker's where Docker has one.
 */

export interface Volume {
  name: string;
  driver: "local";
  /** Absolute path of the volume's data directory on the host. */
  mountpoint: string;
  /** RFC 3339, seconds precision. */
  createdAt: string;
  labels: Record<string, string>;
  /** Driver options as given (`type`, `device`, `o`, `size`). */
  options: Record<string, string>;
  scope: "local";
  anonymous: boolean;
}

export interface VolumeListFilters {
  /** true: only volumes no container uses; false: only volumes in use. */
  dangling?: boolean;
  /** Regular expressions on the name (Docker matches `name=` filters as regexps); any may match. */
  name?: string[];
  /** `key` or `key=value`; all must match. */
  label?: string[];
}

export interface VolumeStore {
  /**
   * Creates a volume, or returns the existing one with that name.
   * @param opts.name absent: a random 64-hex name, and the volume is anonymous.
   * @param opts.anonymous mark a named volume as anonymous (a container's VOLUME with a name chosen by the caller).
   * @throws InvalidArgument for an invalid name ("create NAME: …") or driver option.
   */
  create(opts: { name?: string; labels?: Record<string, string>; options?: Record<string, string>; anonymous?: boolean }): Promise<Volume>;

  /** @throws NotFound "get NAME: no such volume". */
  get(name: string): Promise<Volume>;

  /**
   * Volumes sorted by name, filtered.
   * @param inUse whether a container uses the volume (for `dangling`); absent: none is.
   */
  list(filters?: VolumeListFilters, inUse?: (name: string) => boolean): Promise<Volume[]>;

  /**
   * Deletes a volume and its data.
   * @param opts.force no error if the volume does not exist (a volume in use is still refused).
   * @param inUse the IDs of the containers using the volume.
   * @throws NotFound "get NAME: no such volume" (unless forced);
   *   Conflict "remove NAME: volume is in use - [ID, …]", or if something is mounted inside it.
   */
  remove(name: string, opts: { force?: boolean }, inUse?: (name: string) => string[]): Promise<void>;

  /**
   * Removes the volumes no container uses: only anonymous ones unless `all`.
   * @param opts.label `key` or `key=value`, all must match.
   * @returns the names removed and the bytes their data took.
   */
  prune(inUse: (name: string) => boolean, opts?: { all?: boolean; label?: string[] }): Promise<{ deleted: string[]; spaceReclaimed: number }>;

  /** Bytes of the volume's data (regular files and symlinks, hard links once). @throws NotFound. */
  usage(name: string): Promise<number>;

  /**
   * Docker's copy-up: when a new (empty) volume is first mounted over a path that
   * has content in the image, copy that content (owners, modes, times, xattrs,
   * symlinks, hardlinks) into the volume; the volume's root takes the owner and
   * mode of the source directory. No-op when the volume is not empty or the
   * source does not exist or is not a directory. `containerPath` is resolved
   * inside `rootfs` as the container would see it: symlinks are followed but can
   * never lead out of `rootfs`, and the copy itself follows none.
   * A copy interrupted by a crash is redone on the next call (the partial data is discarded).
   * @throws NotFound for an unknown volume.
   */
  populate(name: string, rootfs: string, containerPath: string): Promise<void>;
}
