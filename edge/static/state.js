/*
 * What the page knows, in a few small slices. Each slice is changed only by the functions
 * next to it, and each change is announced to whoever subscribed with on(topic, listener):
 * the views redraw from here, the actions never draw state themselves.
 *
 * Topics and what their listeners receive:
 *   'user'      the signed-in username, or null when the page must show the sign-in form
 *   'sales'     the shop's sales arrived (GET /sales/): {sales, now_ms}
 *   'sale'      the shopper picked another sale: {name, path}; the catalog and cart are reset
 *   'catalog'   the page of products now on screen: {page, pages, products}
 *   'stock'     one product's stock changed: {id, before, available}
 *   'cart'      the cart changed: {held: true} or {held: false, holdState: 'idle'|'expired'}
 *   'checkout'  a checkout started (true) or ended (false)
 *   'cooldown'  a Retry-After started (true) or passed (false)
 *
 * The server is the authority on stock, carts and time: this is the latest of what it said.
 */

const listeners = new Map();

export function on(topic, listener) {
  if (!listeners.has(topic)) listeners.set(topic, []);
  listeners.get(topic).push(listener);
}

function emit(topic, detail) {
  for (const listener of listeners.get(topic) || []) listener(detail);
}

// ---------------------------------------------------------------- who is signed in
let user = null;

export const signedInUser = () => user;

/** null signs out locally (the sign-out button, or a 401): the sign-in form comes back. */
export function setUser(name) {
  user = name;
  emit('user', name);
}

// ---------------------------------------------------------------- the sale
// The pick lives in the URL (?sale=…), so a reload or a shared link shows the same sale. No
// ?sale is the default sale, served at the seed's paths; any other is under /sales/{name}.
const SALE_NAME = /^[A-Za-z0-9._:@-]{1,64}$/; // the names `flash sale` accepts: path-safe
const query = new URLSearchParams(location.search);

let sale = saleNamed(query.get('sale'));
let sales = Object.freeze({ sales: [], now_ms: 0 });

/** {name, path}: name null and path '' for the default sale; path prefixes its API calls. */
export const pickedSale = () => sale;
export const shopSales = () => sales;

/** Whether this entry of GET /sales/ is the sale on screen. */
export function isPicked(entry) {
  return sale.name ? entry.sale === sale.name : Boolean(entry.default);
}

function saleNamed(name) {
  const valid = typeof name === 'string' && SALE_NAME.test(name);
  return Object.freeze(valid ? { name, path: `/sales/${name}` } : { name: null, path: '' });
}

/** The reply of GET /sales/: the default sale first, then the others. */
export function setSales(reply) {
  sales = Object.freeze({ sales: reply.sales, now_ms: reply.now_ms });
  emit('sales', sales);
}

/** name: a sale of the shop, or null for the default sale. The page starts over in it: its
    first catalog page, and its own cart (each sale keeps its cart id in storage). */
export function pickSale(name) {
  const next = saleNamed(name);
  if (next.name === sale.name) return;
  sale = next;
  catalog = Object.freeze({ page: 1, pages: 1, products: [] });
  cart = NO_CART;
  history.replaceState(null, '', shopUrl(1));
  emit('cart', { held: false, holdState: 'idle' });
  emit('sale', sale);
}

/** The page's own URL for a catalog page of the picked sale. */
export function shopUrl(page) {
  const params = new URLSearchParams();
  if (sale.name) params.set('sale', sale.name);
  if (page > 1) params.set('page', String(page));
  const search = params.toString();
  return search ? `?${search}` : location.pathname;
}

// ---------------------------------------------------------------- catalog and stock
let catalog = Object.freeze({
  page: Math.max(1, parseInt(query.get('page'), 10) || 1),
  pages: 1,
  products: [],
});
const stock = new Map(); // product id -> available units (latest known)

export const catalogPage = () => catalog;
export const stockOf = (id) => stock.get(Number(id));

/** A page of products arrived: their stock is taken as is, without a 'stock' per product. */
export function showCatalog(page, pages, products) {
  catalog = Object.freeze({ page, pages, products });
  for (const p of products) {
    const available = p.available ?? p.stock;
    if (Number.isFinite(available)) stock.set(Number(p.id), available);
  }
  emit('catalog', catalog);
}

/** A newer stock figure for one product (a cart reply, the live socket, a SOLDOUT). */
export function setStock(id, available) {
  id = Number(id);
  if (!Number.isFinite(id) || !Number.isFinite(available)) return;
  const before = stock.get(id);
  stock.set(id, available);
  if (before !== available) emit('stock', { id, before, available });
}

// ---------------------------------------------------------------- the cart
// One cart id per sale ({sale name or '': id}): a cart is one sale's, and going back to a
// sale finds its cart again while the server still holds it.
const CARTS_KEY = 'flash.carts';

const NO_CART = Object.freeze({ id: null, held: null, serverNow: 0, deadlineAt: 0 });
// id: the cart id, kept in sessionStorage so a reload finds the cart again.
// held: the server's last view of the cart. serverNow: its now_ms (replies may arrive out of
// order). deadlineAt: the performance.now() at which the hold ends.
let cart = NO_CART;
let changesInFlight = 0;
let checkingOut = false;

export const cartId = () => cart.id;
export const heldCart = () => cart.held;
export const holdEndsAt = () => cart.deadlineAt;
export const changesPending = () => changesInFlight > 0;
export const isCheckingOut = () => checkingOut;
export const storedCartId = () => storedCarts()[sale.name || ''] ?? null;

function storedCarts() {
  const carts = storageGet(CARTS_KEY);
  return carts && typeof carts === 'object' ? carts : {};
}

/** The picked sale's stored cart id, or none. */
function storeCartId(id) {
  const carts = storedCarts();
  if (id == null) delete carts[sale.name || ''];
  else carts[sale.name || ''] = id;
  storageSet(CARTS_KEY, Object.keys(carts).length ? carts : null);
}

/** Signing out: no sale's cart is the next user's. */
export function forgetCarts() {
  storageSet(CARTS_KEY, null);
}

/** Synchronous on purpose: clicks fired before the first reply must share one cart. */
export function ensureCartId() {
  if (!cart.id) useCartId(newUuid());
  return cart.id;
}

/** Takes a cart id (a new one, or the one sessionStorage kept), before the server shows it. */
export function useCartId(id) {
  if (id === cart.id) return; // already ours: keep what the server last said about it
  cart = { ...NO_CART, id };
  storeCartId(id);
}

/** The server's view of the cart, unless it is for a dropped cart or older than ours. */
export function adoptCart(body) {
  if (!body || body.cart_id !== cart.id) return; // a late reply for a cart we dropped
  const now = Number(body.now_ms) || 0;
  if (now < cart.serverNow) return; // an older state overtaken by a newer reply
  if (body.state && body.state !== 'held') { dropCart('idle'); return; }
  // Server time decides the deadline; the local clock only measures time since this reply.
  const deadlineAt = performance.now() + (Number(body.deadline_ms) - now);
  cart = { id: cart.id, held: body, serverNow: now, deadlineAt };
  emit('cart', { held: true });
}

/** holdState: 'idle' hides the timer, 'expired' leaves "expired" on screen. */
export function dropCart(holdState) {
  cart = NO_CART;
  storeCartId(null);
  emit('cart', { held: false, holdState });
}

/** Counts add/remove calls in flight: an empty cart is dropped only once they are all back. */
export function changeStarted() { changesInFlight += 1; }
export function changeFinished() { changesInFlight -= 1; }

export function setCheckingOut(busy) {
  checkingOut = busy;
  emit('checkout', busy);
}

// ---------------------------------------------------------------- Retry-After
let cooldownUntil = 0;
let cooldownTimer = 0;

export const coolingDown = () => Date.now() < cooldownUntil;

/** Honors Retry-After: buttons that would hit the server stay disabled until it passes. */
export function coolDown(ms) {
  cooldownUntil = Math.max(cooldownUntil, Date.now() + ms);
  clearTimeout(cooldownTimer);
  cooldownTimer = setTimeout(() => emit('cooldown', false), cooldownUntil - Date.now() + 20);
  emit('cooldown', true);
}

// ---------------------------------------------------------------- helpers
function newUuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID only exists in secure contexts (https, localhost); plain-http hosts land here.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function storageGet(key) {
  try { return JSON.parse(sessionStorage.getItem(key)); } catch { return null; }
}

function storageSet(key, value) {
  try {
    if (value == null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch { /* storage disabled (private mode): the in-memory state still works */ }
}
