import { UseGuards } from '@nestjs/common';
import { CONTROLLER_WATERMARK, METHOD_METADATA } from '@nestjs/common/constants.js';
import { leaderOnlyBinding } from './leader-only.bindings.js';
import { LeaderOnlyGuard } from './leader-only.guard.js';
import { LEADER_ONLY_METADATA, type LeaderOnlyOptions } from './leader-only.options.js';

/**
 * Lets the decorated method run only on the leader.
 *
 * - On an HTTP route (a `@Get()`/`@Post()`… method of a `@Controller()`), {@link LeaderOnlyGuard}
 *   checks each request: on a follower it answers `421 Misdirected Request` with
 *   `{ code: 'not_leader', leader_id, leader_url }` (the body `RaftExceptionFilter` gives a
 *   `NotLeaderError`), or `307` to the leader with `{ redirect: true }`. The handler itself is not
 *   checked again — leadership can change during any request; the guard decides at admission.
 * - On any other method of a singleton provider or controller — a `@Cron()`/`@Interval()`/`@Timeout()`
 *   job, an event handler, a method your code calls — the call does nothing on a follower (nor
 *   while the node is starting or stopped) and returns `undefined` (a resolved `Promise<undefined>`
 *   for an `async` method). Put it above or below the scheduling decorator: both orders work.
 *
 * Needs the {@link RaftExplorer} (part of `RaftModule`), which records at bootstrap which node each
 * instance belongs to. Calling such a method on an object the application did not create (or of a
 * request-scoped provider, or before bootstrap) throws instead of guessing: running a leader-only job
 * on every node, or silently never, would both be worse.
 */
export function LeaderOnly(options: LeaderOnlyOptions = {}): MethodDecorator {
  return (target, key, descriptor) => {
    const original = descriptor.value as unknown;
    if (typeof original !== 'function') throw new TypeError(`@LeaderOnly() decorates methods; ${String(key)} is not one`);
    const isAsync = original.constructor?.name === 'AsyncFunction';
    const label = `${(target as { constructor: { name: string } }).constructor.name}.${String(key)}`;

    const wrapper = function (this: object, ...args: unknown[]): unknown {
      // HTTP routes: the guard already decided for this request.
      if (isHttpRoute(this, wrapper, key)) return original.apply(this, args);
      const raft = this ? leaderOnlyBinding(this) : undefined;
      if (!raft) {
        throw new Error(
          `@LeaderOnly() ${label}: no Raft node is known for this object. It must be a singleton provider or controller of an ` +
            `application that imports RaftModule (whose RaftExplorer binds it at bootstrap), called after the application initialized.`,
        );
      }
      if (!raft.isLeader()) return isAsync ? Promise.resolve(undefined) : undefined;
      return original.apply(this, args);
    };
    Object.defineProperty(wrapper, 'name', { value: original.name });
    // Decorators applied before this one (below it) put their metadata on the original function.
    for (const metadataKey of Reflect.getOwnMetadataKeys(original)) {
      Reflect.defineMetadata(metadataKey, Reflect.getOwnMetadata(metadataKey, original), wrapper);
    }
    descriptor.value = wrapper as never;
    Reflect.defineMetadata(LEADER_ONLY_METADATA, options, wrapper);
    UseGuards(LeaderOnlyGuard)(target, key, descriptor);
    return descriptor;
  };
}

/**
 * A route handler of a controller: a `@Controller()` class and a `@Get()`… method. The route metadata
 * is on this wrapper, or on an outer wrapper another decorator put around it (the prototype's method).
 */
function isHttpRoute(instance: object | undefined, wrapper: Function, key: string | symbol): boolean {
  if (instance === undefined || instance === null || Reflect.getMetadata(CONTROLLER_WATERMARK, instance.constructor) !== true) return false;
  if (Reflect.getMetadata(METHOD_METADATA, wrapper) !== undefined) return true;
  const current = (Object.getPrototypeOf(instance) as Record<string | symbol, unknown>)[key];
  return typeof current === 'function' && Reflect.getMetadata(METHOD_METADATA, current) !== undefined;
}
