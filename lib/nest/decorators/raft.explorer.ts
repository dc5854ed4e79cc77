import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { Subscription } from 'rxjs';
import type { CommittedEntry, RaftState } from '../../node/raft-node.js';
import { RaftService } from '../raft.service.js';
import { bindLeaderOnly } from './leader-only.bindings.js';
import { LEADER_ONLY_METADATA } from './leader-only.options.js';
import {
  ON_COMMIT_METADATA,
  ON_LEADER_ELECTED_METADATA,
  ON_LEADERSHIP_LOST_METADATA,
  type LeaderElectedEvent,
  type LeadershipLostEvent,
  type OnCommitOptions,
} from './raft-event.decorators.js';

/** The explorer that serves each node: a second one (RaftExplorer also listed by hand) stays idle. */
const explorers = new WeakMap<RaftService, RaftExplorer>();

interface Handler {
  readonly instance: Record<string, (event: unknown) => unknown>;
  readonly method: string;
  readonly label: string;
}

interface CommitHandler extends Handler {
  readonly types: ReadonlySet<string> | undefined;
  queue: Promise<void>;
}

/**
 * Finds, at bootstrap, the methods of the application's providers and controllers decorated with
 * `@OnLeaderElected()`, `@OnLeadershipLost()`, `@OnCommit()` and `@LeaderOnly()` — the way
 * `@nestjs/schedule` finds `@Cron()` — and connects them to this application's {@link RaftService}:
 * event handlers are called from `state$` and `commits$`; `@LeaderOnly()` instances are bound to this
 * node (per instance, so two applications in one process never share a node).
 *
 * Singleton providers and controllers only (a request-scoped instance has no lifetime to attach a
 * subscription to; it is reported with a warning). One `RaftModule` per application. Listing it again
 * next to `RaftModule` is harmless: one explorer serves each node.
 *
 * On shutdown (`beforeApplicationShutdown`, i.e. before the node stops and before connections close
 * in `onApplicationShutdown`) it stops delivering events and waits for the handlers already queued.
 */
@Injectable()
export class RaftExplorer implements OnModuleInit, BeforeApplicationShutdown {
  private readonly subscription = new Subscription();
  private leadershipQueue: Promise<void> = Promise.resolve();
  private commitHandlers: CommitHandler[] = [];
  private logger: Logger | undefined;

  constructor(
    @Inject(RaftService) private readonly raft: RaftService,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
    @Inject(Reflector) private readonly reflector: Reflector,
  ) {}

  onModuleInit(): void {
    // Before the node starts (RaftService starts it on application bootstrap), so no transition and
    // no applied entry — the replay of the log at start included — happens unobserved.
    if (explorers.has(this.raft)) return;
    explorers.set(this.raft, this);
    this.logger = new Logger(`Raft(${this.raft.nodeId})`);
    const elected: Handler[] = [];
    const lost: Handler[] = [];
    const seen = new Set<object>();
    for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
      const instance = wrapper.instance as Record<string, (event: unknown) => unknown> | undefined;
      if (!instance || typeof instance !== 'object' || seen.has(instance)) continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> | null;
      if (!prototype || prototype === Object.prototype) continue;
      seen.add(instance); // aliases (useExisting) list the same instance again
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const fn = prototype[method] as () => unknown;
        const onElected = this.reflector.get<boolean | undefined>(ON_LEADER_ELECTED_METADATA, fn);
        const onLost = this.reflector.get<boolean | undefined>(ON_LEADERSHIP_LOST_METADATA, fn);
        const onCommit = this.reflector.get<OnCommitOptions | undefined>(ON_COMMIT_METADATA, fn);
        const leaderOnly = this.reflector.get<unknown>(LEADER_ONLY_METADATA, fn) !== undefined;
        if (!onElected && !onLost && !onCommit && !leaderOnly) continue;
        const label = `${instance.constructor.name}.${method}`;
        if (!wrapper.isDependencyTreeStatic()) {
          this.logger.warn(`${label}: Raft decorators are ignored on a request-scoped or transient provider`);
          continue;
        }
        if (leaderOnly) bindLeaderOnly(instance, this.raft);
        if (onElected) elected.push({ instance, method, label });
        if (onLost) lost.push({ instance, method, label });
        if (onCommit) {
          this.commitHandlers.push({ instance, method, label, types: onCommit.types ? new Set(onCommit.types) : undefined, queue: Promise.resolve() });
        }
      }
    }

    if (elected.length > 0 || lost.length > 0) {
      let previous: RaftState | undefined;
      this.subscription.add(
        this.raft.state$.subscribe((state) => {
          const before = previous;
          previous = state;
          const wasLeader = before?.role === 'leader';
          const isLeader = state.role === 'leader';
          if (wasLeader && (!isLeader || state.term !== before.term)) {
            const event: LeadershipLostEvent = {
              nodeId: this.raft.nodeId,
              term: before.term,
              currentTerm: state.term,
              newLeaderId: state.leaderId === this.raft.nodeId ? 0 : state.leaderId,
            };
            this.enqueueLeadership(lost, event, `term ${before.term}`);
          }
          if (isLeader && (!wasLeader || state.term !== before.term)) {
            this.enqueueLeadership(elected, { nodeId: this.raft.nodeId, term: state.term } satisfies LeaderElectedEvent, `term ${state.term}`);
          }
        }),
      );
    }
    if (this.commitHandlers.length > 0) {
      this.subscription.add(
        this.raft.commits$.subscribe((entry) => {
          for (const handler of this.commitHandlers) {
            if (handler.types && !handler.types.has(entry.type)) continue;
            handler.queue = handler.queue.then(() => this.call(handler, entry, `index ${entry.index} (term ${entry.term})`));
          }
        }),
      );
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.subscription.unsubscribe();
    await Promise.all([this.leadershipQueue, ...this.commitHandlers.map((h) => h.queue)]);
  }

  private enqueueLeadership(handlers: readonly Handler[], event: LeaderElectedEvent | LeadershipLostEvent, what: string): void {
    for (const handler of handlers) {
      this.leadershipQueue = this.leadershipQueue.then(() => this.call(handler, event, what));
    }
  }

  /** Calls one handler and waits for it; what it throws (or rejects with) is logged, never propagated. */
  private async call(handler: Handler, event: LeaderElectedEvent | LeadershipLostEvent | CommittedEntry, what: string): Promise<void> {
    try {
      await handler.instance[handler.method]!(event);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.logger?.error(`${handler.label} failed at ${what}: ${message}`, error instanceof Error ? error.stack : undefined);
    }
  }
}
