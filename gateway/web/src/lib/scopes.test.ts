// The trading buttons' scope check: a minimal `window` (sessionStorage + events) for node.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

const store = new Map<string, string>();
const fakeWindow = Object.assign(new EventTarget(), {
  sessionStorage: {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => void store.set(k, v),
    removeItem: (k: string) => void store.delete(k),
  },
});
(globalThis as unknown as { window: unknown }).window = fakeWindow;

const { reportUnauthenticated, setAuthToken } = await import("./api.js");
const { canTrade, tokenInfo, topScope } = await import("./scopes.js");

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims: object) => `${b64({ alg: "HS256" })}.${b64(claims)}.sig`;

beforeEach(() => store.clear());

test("no token and auth off: every button", () => {
  assert.equal(canTrade(), true);
});

test("no token once the gateway answered 401: no trading buttons", () => {
  reportUnauthenticated("a bearer token is required");
  assert.equal(canTrade(), false);
});

test("read token: no trading buttons; trade and admin: yes", () => {
  setAuthToken(jwt({ sub: "viewer", scope: "read" }));
  assert.equal(canTrade(), false);
  setAuthToken(jwt({ sub: "trader", scope: "read trade" }));
  assert.equal(canTrade(), true);
  setAuthToken(jwt({ sub: "root", scopes: ["admin"] }));
  assert.equal(canTrade(), true);
  assert.equal(topScope(tokenInfo()!), "admin");
});

test("the token is stored without a Bearer prefix and its claims are read", () => {
  setAuthToken(`Bearer ${jwt({ sub: "trader", scope: "trade", exp: 2_000_000_000 })}`);
  const info = tokenInfo();
  assert.equal(info?.subject, "trader");
  assert.deepEqual(info?.scopes, ["trade"]);
  assert.equal(info?.expires?.getTime(), 2_000_000_000_000);
});

test("a token the gateway refused grants nothing; a new one is judged afresh", () => {
  setAuthToken(jwt({ sub: "mallory", scope: "admin" }));
  reportUnauthenticated("invalid token: Signature verification failed");
  assert.equal(canTrade(), false);
  setAuthToken(jwt({ sub: "trader", scope: "trade" }));
  assert.equal(canTrade(), true);
});

test("a token that is not a JWT grants nothing", () => {
  setAuthToken("not-a-jwt");
  assert.equal(canTrade(), false);
});
