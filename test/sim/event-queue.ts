/**
 * The simulator's virtual clock: a priority queue of events ordered by (time, insertion order).
 * Time is an integer number of virtual microseconds and only moves when an event is taken, so a run
 * never depends on how fast the host is. Ties are broken by insertion order, which is itself
 * determined by the seed, so the order of events is a pure function of the seed.
 */
export interface SimEvent {
  /** Virtual time in microseconds. */
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
  cancelled: boolean;
}

export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private seq = 0;
  private current = 0;

  /** The virtual time of the event being run (µs). */
  get now(): number {
    return this.current;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Runs `run` `delayUs` microseconds from now (rounded to whole µs, never in the past). */
  schedule(delayUs: number, run: () => void): SimEvent {
    return this.at(this.current + Math.max(0, Math.round(delayUs)), run);
  }

  at(timeUs: number, run: () => void): SimEvent {
    const event: SimEvent = { at: Math.max(timeUs, this.current), seq: this.seq++, run, cancelled: false };
    this.push(event);
    return event;
  }

  /** The time of the next live event, or undefined when the queue is empty. */
  peekTime(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.at;
  }

  /** Takes the next live event and moves the clock to its time. */
  pop(): SimEvent | undefined {
    this.dropCancelled();
    const top = this.heap[0];
    if (top === undefined) return undefined;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    this.current = top.at;
    return top;
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) {
      const last = this.heap.pop()!;
      if (this.heap.length > 0) {
        this.heap[0] = last;
        this.siftDown(0);
      }
    }
  }

  private push(event: SimEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && before(heap[l]!, heap[smallest]!)) smallest = l;
      if (r < n && before(heap[r]!, heap[smallest]!)) smallest = r;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

function before(x: SimEvent, y: SimEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}
