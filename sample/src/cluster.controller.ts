import { Body, Controller, Delete, Get, HttpCode, Inject, Param, ParseIntPipe, Post, ValidationPipe } from '@nestjs/common';
import { IsInt, IsOptional, IsPositive, IsUrl } from 'class-validator';
import { RaftService } from '../../lib/index.js';

class MemberDto {
  /** Optional: when left out, the leader asks the new node for it (`GET /raft/id`). */
  @IsOptional()
  @IsInt()
  @IsPositive()
  id?: number;

  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  url!: string;
}

/** Cluster status and membership changes of the sample. */
@Controller('cluster')
export class ClusterController {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  @Get()
  status() {
    const s = this.raft.status();
    return {
      nodeId: s.nodeId,
      pid: process.pid,
      role: s.role,
      term: s.term,
      leaderId: s.leaderId,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      lastIndex: s.lastIndex,
      snapshotIndex: s.snapshotIndex,
      logStartIndex: s.logStartIndex,
      members: s.members,
      learners: s.learners,
    };
  }

  /** Adds a learner (a read replica: it receives the log, serves reads, never votes). */
  @Post('learners')
  @HttpCode(200)
  async addLearner(@Body(new ValidationPipe({ expectedType: MemberDto, whitelist: true, forbidNonWhitelisted: true })) member: MemberDto) {
    await this.raft.addLearner(member.id !== undefined ? { id: member.id, url: member.url } : { url: member.url });
    const { members, learners } = this.raft.status();
    return { ok: true, members, learners };
  }

  /** Makes a learner a voter (joint consensus). */
  @Post('learners/:id/promote')
  @HttpCode(200)
  async promote(@Param('id', ParseIntPipe) id: number) {
    await this.raft.promoteLearner(id);
    const { members, learners } = this.raft.status();
    return { ok: true, members, learners };
  }

  /** Adds a member through joint consensus; answers when C_new is committed. */
  @Post('members')
  @HttpCode(200)
  async add(@Body(new ValidationPipe({ expectedType: MemberDto, whitelist: true, forbidNonWhitelisted: true })) member: MemberDto) {
    await this.raft.addMember(member.id !== undefined ? { id: member.id, url: member.url } : { url: member.url });
    return { ok: true, members: this.raft.status().members };
  }

  /** Removes a voter or a learner. */
  @Delete('members/:id')
  async remove(@Param('id', ParseIntPipe) id: number) {
    await this.raft.removeMember(id);
    return { ok: true, members: this.raft.status().members };
  }
}
