// The code shown in README.md, kept here so that `npm test` (tsc) proves it compiles.
import { Body, Controller, Inject, Injectable, Module, Post, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { RaftModule, RaftService, type RaftStateMachine } from '../../lib/index.js';

// --- a state machine -------------------------------------------------------------------------
@Injectable()
export class CounterMachine implements RaftStateMachine<number> {
  private value = 0;
  apply(command: Uint8Array): number {
    this.value += Number(new TextDecoder().decode(command));
    return this.value; // the answer of the command() call that proposed it
  }
  // Optional: log compaction. With both, the node snapshots every `snapshotEvery` entries and drops the log before it.
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.value));
  }
  restore(data: Uint8Array): void {
    this.value = Number(new TextDecoder().decode(data));
  }
}

// --- the module ------------------------------------------------------------------------------
@Module({
  imports: [
    RaftModule.forRoot({
      nodeId: Number(process.env.NODE_ID),
      url: process.env.PUBLIC_URL, // how the other nodes reach this one
      peers: [
        { id: 1, url: 'http://10.0.0.1:3000' },
        { id: 2, url: 'http://10.0.0.2:3000' },
        { id: 3, url: 'http://10.0.0.3:3000' },
      ],
      stateMachine: CounterMachine,
      storage: { postgres: { url: process.env.DATABASE_URL } }, // leave out for the embedded default
      clusterSecret: process.env.RAFT_CLUSTER_SECRET, // peers sign every RPC with it (see Security)
    }),
  ],
  providers: [CounterMachine],
})
export class AppModule {}

// --- replicate a command from a controller --------------------------------------------------
@Controller('counter')
export class CounterController {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  @Post('add')
  async add(@Body() body: { amount: number }): Promise<{ total: number }> {
    // Resolves once a majority stored it and this cluster's state machine applied it; on a follower
    // the command is forwarded to the leader.
    const total = await this.raft.command<number>(String(body.amount), { timeoutMs: 5_000 });
    return { total };
  }
}

// --- leader election: run a job on exactly one node -----------------------------------------
@Injectable()
export class NightlyReport implements OnModuleInit, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private subscription?: Subscription;

  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  onModuleInit(): void {
    this.subscription = this.raft.state$.subscribe((state) => console.log(`role ${state.role}, term ${state.term}, leader ${state.leaderId}`));
    this.timer = setInterval(() => {
      if (this.raft.isLeader()) void this.run();
    }, 60_000);
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
  }

  private async run(): Promise<void> {
    // ...
  }
}

// --- follow the replicated log ---------------------------------------------------------------
@Injectable()
export class AuditTrail implements OnModuleInit {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  onModuleInit(): void {
    const lastSeen = 0; // e.g. loaded from your own table: resume where you stopped
    this.raft.commitsFrom(lastSeen + 1).subscribe((entry) => {
      if (entry.type === 'command') console.log(entry.index, entry.term, new TextDecoder().decode(entry.command));
    });
  }
}

// --- a read replica: a learner receives the log but never votes ------------------------------
@Injectable()
export class ReplicaAdmin {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  async addReplica(url: string): Promise<void> {
    await this.raft.addLearner({ url }); // its id is asked from the server at `url` (GET /raft/id)
  }

  async promote(id: number): Promise<void> {
    await this.raft.promoteLearner(id); // joint consensus: it becomes a voter
  }
}
