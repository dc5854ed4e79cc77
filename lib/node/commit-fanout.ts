import { Observable, type Subscriber } from 'rxjs';

interface Sink<T> {
  readonly subscriber: Subscriber<T>;
  queue: T[];
  head: number;
  scheduled: boolean;
  lastDelivered: number;
}

/**
 * Delivers items (committed entries) to each subscriber through its own bounded buffer, in order,
 * outside the code that publishes them: a subscriber is called in slices of at most `sliceMs` per turn
 * of the event loop, so a slow (synchronous) subscriber delays only itself and never holds up the
 * node's pipeline, timers or sockets for long. A subscriber that falls `limit` items behind is ended
 * with the error `overflow(lastDeliveredIndex)` (the policy: it must catch up from storage, with
 * `commitsFrom`), and the node goes on.
 */
export class CommitFanout<T extends { readonly index: number }> {
  private readonly sinks = new Set<Sink<T>>();
  private completed = false;

  readonly observable: Observable<T> = new Observable<T>((subscriber) => {
    if (this.completed) {
      subscriber.complete();
      return;
    }
    const sink: Sink<T> = { subscriber, queue: [], head: 0, scheduled: false, lastDelivered: 0 };
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  });

  constructor(
    private readonly limit: number,
    private readonly overflow: (lastDeliveredIndex: number, limit: number) => Error,
    private readonly sliceMs = 5,
  ) {}

  /** Whether anyone listens (publishing to nobody costs nothing). */
  get observed(): boolean {
    return this.sinks.size > 0;
  }

  publish(item: T): void {
    for (const sink of this.sinks) {
      if (sink.queue.length - sink.head >= this.limit) {
        this.sinks.delete(sink);
        sink.queue = [];
        sink.subscriber.error(this.overflow(sink.lastDelivered, this.limit));
        continue;
      }
      sink.queue.push(item);
      this.schedule(sink);
    }
  }

  /** Ends every subscription once what it has buffered is delivered. */
  complete(): void {
    this.completed = true;
    for (const sink of this.sinks) {
      if (sink.head >= sink.queue.length) {
        this.sinks.delete(sink);
        sink.subscriber.complete();
      }
    }
  }

  private schedule(sink: Sink<T>): void {
    if (sink.scheduled) return;
    sink.scheduled = true;
    setImmediate(() => this.drain(sink));
  }

  private drain(sink: Sink<T>): void {
    sink.scheduled = false;
    const until = performance.now() + this.sliceMs;
    while (sink.head < sink.queue.length) {
      if (sink.subscriber.closed || !this.sinks.has(sink)) return;
      const item = sink.queue[sink.head++]!;
      sink.lastDelivered = item.index;
      sink.subscriber.next(item);
      if (sink.head < sink.queue.length && performance.now() >= until) {
        // Yield to the event loop; keep the rest (dropping what was delivered).
        sink.queue = sink.queue.slice(sink.head);
        sink.head = 0;
        this.schedule(sink);
        return;
      }
    }
    sink.queue = [];
    sink.head = 0;
    if (this.completed && this.sinks.delete(sink)) sink.subscriber.complete();
  }
}
