// Sensorcast dashboard: sign-in, then the live view of the fleet.

import "./styles.css";
import { decodeToken, loadStoredToken, storeToken, takeTokenFromLocation, type Claims } from "./auth";
import { h } from "./dom";
import { formatDateTime } from "./format";
import { Session } from "./session";

const app = document.getElementById("app")!;
let session: Session | null = null;

function logo(): HTMLElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag: string, attrs: Record<string, string>) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  };
  const mark = svg("svg", { viewBox: "0 0 32 32", class: "logo-mark", "aria-hidden": "true", focusable: "false" });
  mark.append(
    svg("rect", { width: "32", height: "32", rx: "7", fill: "currentColor" }),
    svg("path", { d: "M6 19h4l3-8 4 12 3-7 2 3h4", fill: "none", stroke: "#fff", "stroke-width": "2.4", "stroke-linecap": "round", "stroke-linejoin": "round" }),
  );
  return h("span", { class: "brand" }, mark, h("span", { class: "brand-name" }, "Sensorcast"));
}

function showSignIn(opts: { token?: string; error?: string } = {}): void {
  session?.stop();
  session = null;
  document.title = "Sign in · Sensorcast";
  const input = h("textarea", {
    id: "token",
    name: "token",
    rows: 5,
    required: true,
    autocomplete: "off",
    autocapitalize: "off",
    spellcheck: "false",
    placeholder: "eyJhbGciOi…",
    "data-testid": "token-input",
    "aria-describedby": "token-help",
  });
  input.value = opts.token ?? "";
  const error = h("p", { class: "form-error", role: "alert", "data-testid": "signin-error", hidden: !opts.error }, opts.error ?? "");
  const form = h(
    "form",
    { class: "signin-card", "data-testid": "signin-form", novalidate: true },
    logo(),
    h("h1", {}, "Sign in to the live dashboard"),
    h("p", { class: "muted", id: "token-help" }, "Paste a dashboard access token (a JWT issued for your user). It stays in this browser tab only."),
    h("label", { for: "token" }, "Access token"),
    input,
    error,
    h("button", { type: "submit", class: "btn btn-primary btn-block", "data-testid": "sign-in" }, "Sign in"),
    h(
      "details",
      { class: "hint" },
      h("summary", {}, "Where do I get a token?"),
      h(
        "p",
        {},
        "In development, ",
        h("code", {}, "make run"),
        " prints a link that signs you in. Or mint one with ",
        h("code", {}, "sensorcast token --sub you --rooms 'global' --commands 'device:*'"),
        ".",
      ),
    ),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn(input.value.trim());
  });
  app.replaceChildren(h("main", { class: "signin" }, form));
  if (!opts.token) input.focus();
  else error.hidden || input.focus();
}

function tokenProblem(token: string): { claims: Claims } | { error: string } {
  if (!token) return { error: "Enter an access token." };
  const decoded = decodeToken(token);
  if ("error" in decoded) return decoded;
  const { claims } = decoded;
  if (!claims.sub) return { error: "This token has no user (sub claim): it is not a dashboard token." };
  if (claims.exp !== undefined && claims.exp * 1000 <= Date.now()) {
    return { error: `This token expired on ${formatDateTime(claims.exp * 1000)}.` };
  }
  return decoded;
}

function signIn(token: string): void {
  const checked = tokenProblem(token);
  if ("error" in checked) {
    storeToken(null);
    showSignIn({ token, error: checked.error });
    return;
  }
  storeToken(token);
  session?.stop();
  document.title = "Sensorcast";
  session = new Session(app, token, checked.claims, {
    logo,
    signOut: () => {
      storeToken(null);
      showSignIn();
    },
    unauthorized: (message) => {
      storeToken(null);
      showSignIn({ token, error: message });
    },
  });
  void session.start();
}

const fromUrl = takeTokenFromLocation();
if (fromUrl) {
  // Pre-fill the form (seen only if the token is refused) and sign in at once.
  showSignIn({ token: fromUrl });
  signIn(fromUrl);
} else {
  const stored = loadStoredToken();
  if (stored) signIn(stored);
  else showSignIn();
}

window.addEventListener("hashchange", () => {
  const t = takeTokenFromLocation();
  if (t) signIn(t);
});

