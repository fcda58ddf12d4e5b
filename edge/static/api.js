/*
 * The JSON API, one function per endpoint. Each resolves with the reply's JSON body on a 2xx
 * and throws an ApiError otherwise; the error's code is the server's stable word (SOLDOUT,
 * EXPIRED, …), which is what the UI decides on, never the message.
 */

export const MESSAGES = {
  SOLDOUT: 'Sold out',
  LIMIT: 'You reached the per-customer limit',
  EXPIRED: 'Your cart expired; the items went back on sale',
  CLOSED: 'The sale is not open',
  RATE_LIMITED: 'Slow down a little',
  UNAUTHENTICATED: 'Please sign in to continue',
  EMPTY: 'Your cart is empty',
  NOSKU: 'This product is not part of the sale',
  NOCART: 'That cart no longer exists',
  NOSALE: 'The shop does not run that sale',
  BADSTATE: 'That cart was already checked out',
  NOTADMITTED: 'The sale has a waiting room: you are in line',
  NOTQUEUED: 'Your place in line lapsed',
  NETWORK: 'Can’t reach the shop. Check your connection.',
};

// After these codes the cart id is useless on the server, so we drop it locally too. (The
// server answers someone else's cart with NOCART, exactly as a missing one.)
export const CART_GONE = new Set(['EXPIRED', 'NOCART', 'BADSTATE']);

export class ApiError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The text a buyer sees for an error: ours for known codes, else the server's message. */
export function friendly(err) {
  if (err.code === 'RATE_LIMITED') return `${MESSAGES.RATE_LIMITED}: try again in ${Math.ceil(err.retryAfterMs / 1000)} s`;
  return MESSAGES[err.code] || err.message || 'Something went wrong';
}

// Replies to POST and GET /session are {user: {id, username}}.
export const getSession = () => call('GET', '/session');
export const signIn = (username) => call('POST', '/session', { username });
/** The shop's login: its identity provider's token, exchanged for a session. */
export const signInWithToken = (token) => call('POST', '/session', { token });
/** How this shop signs shoppers in: {demo, shop_login_url}. */
export const getLogin = () => call('GET', '/login');
export const signOut = () => call('DELETE', '/session');
export const getSales = () => call('GET', '/sales/');

// One sale's calls: `sale` is state's {name, path}, and sale.path ('' for the default sale,
// else /sales/{name}) prefixes the seed's paths. Callers pass the sale they act in, so a
// reply that comes back after the shopper picked another sale still names its own.
export const getSale = (sale) => call('GET', `${sale.path}/sale`);
export const getProducts = (sale, skip, limit) =>
  call('GET', `${sale.path}/products/?skip=${skip}&limit=${limit}`);
export const getCart = (sale, cartId) => call('GET', `${sale.path}/cart/${encodeURIComponent(cartId)}`);
/** op is 'add' or 'remove'. */
export const changeCart = (sale, op, cartId, productId, qty) =>
  call('POST', `${sale.path}/cart/${op}`, { product_id: productId, cart_id: cartId, qty });
export const checkout = (sale, cartId) => call('POST', `${sale.path}/cart/checkout`, { cart_id: cartId });
/** The waiting room: join (or keep the place), read the place. */
export const joinQueue = (sale) => call('POST', `${sale.path}/queue`, {});
export const getPlace = (sale) => call('GET', `${sale.path}/queue`);
export const getOrder = (sale, orderId) =>
  call('GET', `${sale.path}/orders/${encodeURIComponent(orderId)}`);

/** fetch() wrapper: resolves with the JSON body on 2xx, throws ApiError otherwise. */
async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'NETWORK', MESSAGES.NETWORK, 0);
  }
  const data = await res.json().catch(() => null); // 204s and proxy error pages have no JSON
  if (res.ok) return data;
  const fallback = res.status === 401 ? 'UNAUTHENTICATED' : res.status === 429 ? 'RATE_LIMITED' : `HTTP_${res.status}`;
  const code = (data && typeof data.error === 'string' && data.error) || fallback;
  const message = (data && data.message) || res.statusText || 'Something went wrong';
  throw new ApiError(res.status, code, message, parseRetryAfter(res.headers.get('Retry-After')));
}

function parseRetryAfter(value) {
  if (!value) return 1000;
  const secs = Number(value);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(value) - Date.now();
  return Math.min(60000, Math.max(500, ms || 1000));
}
