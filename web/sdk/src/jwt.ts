// Reading a JWT's claims without verifying it: the client only needs `exp`
// to know when to refresh. The server is the one that checks signatures.

/** Decodes base64url (no padding needed) to a UTF-8 string; atob and TextDecoder exist in browsers and Node. */
function base64UrlDecode(s: string): string {
  let b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  while (b64.length % 4 !== 0) b64 += "=";
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT, or undefined if it is not a readable JWT. */
export function decodeJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === "") return undefined;
  try {
    const claims: unknown = JSON.parse(base64UrlDecode(parts[1]!));
    return claims !== null && typeof claims === "object" && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The token's expiry in epoch ms, or undefined (not a JWT, or no numeric `exp`). */
export function jwtExpiryMs(token: string): number | undefined {
  const exp = decodeJwtClaims(token)?.["exp"];
  return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
}
