// The driver's errors live in core/errors.ts so that transports can use them without importing upwards.
export {
  CommandTimeoutError,
  LeadershipLostError,
  NodeStoppedError,
  CommandAbortedError,
  RaftOptionsError,
  CommandForwardingError,
  ConfigurationChangeFailedError,
  StorageFailureError,
} from '../core/errors.js';
