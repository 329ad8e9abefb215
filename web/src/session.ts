// The signed-in token lives only in this tab (sessionStorage): never in localStorage or a cookie.
const KEY = "clinic.token";

export interface Claims {
  sub: string;
  role: string;
  exp: number; // seconds since the epoch
}

type Listener = (reason: string) => void;
const listeners: Listener[] = [];

function decode(token: string): Claims | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json);
    if (typeof claims.sub !== "string" || typeof claims.role !== "string") return null;
    return { sub: claims.sub, role: claims.role, exp: Number(claims.exp ?? 0) };
  } catch {
    return null;
  }
}

let expiryTimer: number | undefined;

function end(reason: string): void {
  sessionStorage.removeItem(KEY);
  window.clearTimeout(expiryTimer);
  for (const listener of listeners) listener(reason);
}

function watchExpiry(claims: Claims): void {
  window.clearTimeout(expiryTimer);
  const ms = claims.exp * 1000 - Date.now();
  // setTimeout's ceiling is about 24.8 days; longer tokens are checked by the server anyway
  if (ms < 2 ** 31 - 1) expiryTimer = window.setTimeout(() => end("Your sign-in has expired."), Math.max(0, ms));
}

export const session = {
  token(): string | null {
    return sessionStorage.getItem(KEY);
  },
  claims(): Claims | null {
    const token = this.token();
    return token ? decode(token) : null;
  },
  /** Accept a pasted token: a message saying what is wrong with it, or null when signed in. */
  signIn(raw: string): string | null {
    const token = raw.trim().replace(/^Bearer\s+/i, "");
    const claims = decode(token);
    if (!claims) return "That is not a clinic token (expected three dot-separated parts, from `clinic token`).";
    if (claims.exp && claims.exp * 1000 <= Date.now()) return "That token has expired: make a new one.";
    sessionStorage.setItem(KEY, token);
    watchExpiry(claims);
    return null;
  },
  resume(): Claims | null {
    const claims = this.claims();
    if (!claims) return null;
    if (claims.exp && claims.exp * 1000 <= Date.now()) {
      end("Your sign-in has expired.");
      return null;
    }
    watchExpiry(claims);
    return claims;
  },
  signOut(): void {
    end("Signed out.");
  },
  /** The server refused the token (UNAUTHENTICATED): back to the sign-in. */
  rejected(detail: string): void {
    if (!this.token()) return;
    end(/expired/i.test(detail) ? "Your sign-in has expired." : `The server refused this token: ${detail}`);
  },
  onEnd(listener: Listener): void {
    listeners.push(listener);
  },
};
