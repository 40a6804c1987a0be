// Talking to the LahStats API from the page: every call carries the bearer token, every error
// comes back as an ApiError whose `sentence` a person can read.

const TOKEN_KEY = "lahstats.token";

// The token lives in sessionStorage: it is gone when the tab closes. Locally it is pasted in
// (`lahstats token USER_ID` prints one); in production Supabase's client would hand the page
// `session.access_token` here after its own sign-in (README, "The web page").
export const auth = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  /** status: the HTTP status (0 when the server was not reached); code: the API's error code. */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    this.sentence = sentenceFor(code, message);
  }
}

// What each of the API's error codes means to the person looking at the page. Codes not
// listed here fall back to the API's own message, made into a sentence.
const SENTENCES = {
  missing_token: () => "Please sign in with your token first.",
  invalid_token: (m) => `That token was not accepted (${m.replace(/^invalid token:\s*/i, "")}). Paste a fresh one.`,
  token_expired: () => "Your sign-in has expired. Paste a fresh token.",
  group_not_found: () => "That group does not exist, or you are not one of its members.",
  session_not_found: () => "That session does not exist, or it is not in one of your groups.",
  speaker_not_found: () => "That speaker is not part of this session.",
  session_not_ready: () => "This session is not ready yet: claims open once processing has finished.",
  speaker_already_claimed: () => "Someone has already claimed this speaker.",
  already_claimed: () => "You have already claimed a speaker in this session as yourself. Undo that claim first, or claim this one for a guest.",
  not_your_claim: () => "Only the person who claimed this speaker can undo the claim.",
  validation_error: (m) => `That was not accepted: ${m.replace(/^body\./, "")}.`,
  network: () => "The server could not be reached. Check your connection and try again.",
};

export function sentenceFor(code, message) {
  const make = SENTENCES[code];
  if (make) return make(message || "");
  const text = (message || "Something went wrong").trim();
  const capitalised = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page, say): fall through to the status line
  }
  const error = body && body.error;
  if (error && typeof error.code === "string") {
    return new ApiError(response.status, error.code, String(error.message || ""));
  }
  return new ApiError(response.status, "http_error", `the server answered ${response.status} ${response.statusText}`);
}

async function send(path, { method = "GET", body, accept = "application/json", signal } = {}) {
  const headers = { Accept: accept };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", String(error));
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function api(path, options = {}) {
  const response = await send(path, options);
  return response.status === 204 ? null : response.json();
}

/**
 * Follow a server-sent-events stream with the Authorization header: EventSource cannot send
 * one, and a token in the URL would end up in logs and history. Calls onEvent(name, data) for
 * each event (data parsed as JSON) until the server ends the stream or `signal` aborts.
 * Resolves when the stream ends; rejects with ApiError when it cannot be opened.
 */
export async function followEvents(path, onEvent, signal) {
  const response = await send(path, { accept: "text/event-stream", signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network", String(error));
    }
    if (chunk.done) return;
    buffer += chunk.value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end), onEvent);
      buffer = buffer.slice(end + 2);
    }
  }
}

// One event block of the text/event-stream format: `event:` names it, `data:` lines are
// joined by newlines, lines starting with ':' are comments (the server's keep-alives).
function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(name, JSON.parse(data.join("\n")));
}
