// @sensorcast/client: the TypeScript client of the Sensorcast dashboard
// WebSocket (docs/protocol.md section 2).

export { SensorcastClient } from "./client.js";
export { ConnectionLostError, NotConnectedError, RequestTimeoutError, ServerError } from "./errors.js";
export { backoffCeiling, fullJitter } from "./backoff.js";
export { isFinalStatus } from "./command.js";
export { decodeJwtClaims, jwtExpiryMs } from "./jwt.js";
export type {
  Alert,
  BackoffOptions,
  ClientEvents,
  ClientOptions,
  Clock,
  CommandCall,
  CommandRequest,
  CommandResult,
  CommandStatus,
  ConnectionState,
  DeviceStatus,
  ErrorEvent,
  FetchLike,
  Presence,
  PresenceMember,
  Rejection,
  RoomMessage,
  StateEvent,
  SubscribeOptions,
  SubscribeResult,
  Telemetry,
  TokenProvider,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";
