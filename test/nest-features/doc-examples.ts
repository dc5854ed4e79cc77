// The code shown in docs/nest-features.md (and proposed for the README and the sample), kept here so
// that `npm test` (tsc) proves it compiles. Once lib/index.ts exports these, import them from there.
import { Controller, Get, Header, Inject, Injectable, Logger, Module, Post, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Cron, CronExpression, ScheduleModule } from '@nestjs/schedule';
import { register } from 'prom-client';
import { RaftModule } from '../../lib/index.js';
import { LeaderOnly } from '../../lib/nest/decorators/leader-only.decorator.js';
import { RAFT_LEADER_URL } from '../../lib/nest/decorators/leader-only.options.js';
import { OnCommit, OnLeaderElected, OnLeadershipLost, type CommitEvent, type LeaderElectedEvent, type LeadershipLostEvent } from '../../lib/nest/decorators/raft-event.decorators.js';
import { RaftHealthIndicator } from '../../lib/nest/health/raft.health.js';
import { provideRaftMetrics } from '../../lib/nest/metrics/raft.metrics.js';

// --- leadership and commit events -----------------------------------------------------------
@Injectable()
export class LeadershipLog {
  private readonly logger = new Logger(LeadershipLog.name);

  @OnLeaderElected()
  elected({ term }: LeaderElectedEvent): void {
    this.logger.log(`this node leads term ${term}`);
  }

  @OnLeadershipLost()
  lost({ term, newLeaderId }: LeadershipLostEvent): void {
    this.logger.log(`lost the leadership of term ${term}; leader now ${newLeaderId || 'unknown'}`);
  }

  @OnCommit({ types: ['command'] })
  async committed(entry: CommitEvent): Promise<void> {
    // awaited: the next entry comes once this one is done
    this.logger.debug(`applied #${entry.index}: ${new TextDecoder().decode(entry.command)}`);
  }
}

// --- run a job on exactly one instance -------------------------------------------------------
@Injectable()
export class Reports {
  @Cron(CronExpression.EVERY_HOUR)
  @LeaderOnly()
  async sendHourlyReport(): Promise<void> {
    // runs on the leader only; on the other nodes the call does nothing
  }
}

// --- without @nestjs/schedule: any method, called by your own timer ---------------------------
@Injectable()
export class Sweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), 60_000);
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  @LeaderOnly()
  async sweep(): Promise<number> {
    return 0; // on a follower sweep() resolves to undefined without running
  }
}

// --- HTTP routes that only the leader serves ---------------------------------------------------
@Controller('admin')
export class AdminController {
  @Post('reindex')
  @LeaderOnly() // on a follower: 421 { code: 'not_leader', leader_id, leader_url }
  reindex(): { started: true } {
    return { started: true };
  }

  @Post('compact')
  @LeaderOnly({ redirect: true }) // on a follower: 307 to the same path on the leader
  compact(): { started: true } {
    return { started: true };
  }
}

// --- health and metrics -------------------------------------------------------------------------
@Controller()
export class OpsController {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(RaftHealthIndicator) private readonly raft: RaftHealthIndicator,
  ) {}

  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.raft.isHealthy('raft', { maxLag: 100 })]);
  }

  @Get('metrics')
  @Header('content-type', register.contentType)
  metrics(): Promise<string> {
    return register.metrics();
  }
}

@Module({
  imports: [
    RaftModule.forRoot({
      nodeId: Number(process.env.NODE_ID),
      url: process.env.PUBLIC_URL,
      peers: [
        { id: 1, url: 'http://10.0.0.1:3000' },
        { id: 2, url: 'http://10.0.0.2:3000' },
        { id: 3, url: 'http://10.0.0.3:3000' },
      ],
      stateMachine: (_index, command) => command.byteLength,
    }),
    ScheduleModule.forRoot(),
    TerminusModule.forRoot(),
  ],
  controllers: [AdminController, OpsController],
  providers: [
    LeadershipLog,
    Reports,
    Sweeper,
    ...provideRaftMetrics(), // prom-client's global registry; or provideRaftMetrics({ registry })
    // clients reach the nodes through other addresses than the peers do:
    { provide: RAFT_LEADER_URL, useValue: ({ id }: { id: number }) => `https://node-${id}.example.com` },
  ],
})
export class OpsAppModule {}

