// Errors the client's promises reject with. Each sets its own name so that
// it survives bundlers and reads well in logs.

/** The request needs an open connection and there is none. */
export class NotConnectedError extends Error {
  constructor(message = "not connected") {
    super(message);
    this.name = "NotConnectedError";
  }
}

/** The connection ended (or the client was closed) before the reply came. */
export class ConnectionLostError extends Error {
  constructor(message = "connection lost before the reply") {
    super(message);
    this.name = "ConnectionLostError";
  }
}

/** No reply within `requestTimeoutMs`. */
export class RequestTimeoutError extends Error {
  constructor(message = "request timed out") {
    super(message);
    this.name = "RequestTimeoutError";
  }
}

/** Addition: the server answered a request with an `error` message. */
export class ServerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "ServerError";
    this.code = code;
  }
}
