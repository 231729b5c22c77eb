/**
 * The engine's one event stream (Docker's `/events`): what happened to containers, images,
 * volumes and networks, in Docker's terms (type, action, actor ID and attributes), in the
 * order the concerns report it. Both doors relay it; neither makes events of its own.
 */

export type EngineEventType = "container" | "image" | "volume" | "network";

export interface EngineEvent {
  type: EngineEventType;
  /** Docker's action: create, start, die, health_status: healthy, pull, tag, mount, connect… */
  action: string;
  /** Docker's Actor.ID: a container, image or network ID, a volume name, or a reference (pull, push). */
  id: string;
  /** Docker's Actor.Attributes (name, image, driver, container…). */
  attributes: Record<string, string>;
  /** Unix milliseconds. */
  time: number;
}

/** How a concern reports an event: the bus stamps the time. */
export type PublishEvent = (type: EngineEventType, action: string, id: string, attributes?: Record<string, string>) => void;

/** What the doors get: a subscription, ended by the function it returns. */
export interface EngineEvents {
  subscribe(listener: (event: EngineEvent) => void): () => void;
}

export class EventBus implements EngineEvents {
  private readonly listeners = new Set<(event: EngineEvent) => void>();

  readonly publish: PublishEvent = (type, action, id, attributes = {}) => {
    const event: EngineEvent = { type, action, id, attributes, time: Date.now() };
    // A listener's failure (a closed response) is its own: the others still get the event.
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // the listener's door handles its own errors; nothing to undo here
      }
    }
  };

  subscribe(listener: (event: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
