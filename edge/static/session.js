/* Signing in and out. Who is signed in lives in state (setUser); app.js reacts to it.

   A visitor browses the shop as it is; the first add to cart asks for an account, and that
   add is made once signed in (it is remembered across the trip to the shop's login page, in
   this tab's storage). The shop's login sends the shopper to its own page with a return_to
   link; it comes back to this page with its token after `#token=`, exchanged here for a
   session and taken out of the address bar. */

import * as api from './api.js';
import { handleError } from './errors.js';
import { dropCart, forgetCarts, pickedSale, setUser, signedInUser } from './state.js';
import { stopOrder } from './order.js';
import { renderGridMessage } from './views/catalog.js';
import {
  openSignInPanel, setSignInBusy, showLoginModes, showSignInError, typedUsername,
} from './views/session.js';

const USERNAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const PENDING_ADD = 'flash:pending-add';

const userNameOf = (me) => (me && me.user && me.user.username) || '';

/** At boot: a token back from the shop's login, else the session cookie, may name someone. */
export async function checkSession() {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (token) {
    // Out of the address bar (and so of the history and of any link copied from it) first.
    history.replaceState(null, '', location.pathname + location.search);
    try {
      setUser(userNameOf(await api.signInWithToken(token)) || 'you');
      return;
    } catch (err) {
      openSignInPanel('The shop’s sign-in did not go through; try again.');
    }
  }
  try {
    setUser(userNameOf(await api.getSession()) || 'you');
  } catch (err) {
    if (err.status === 401) setUser(null);
    else renderGridMessage('We couldn’t reach the shop.', checkSession);
  }
}

/** Reads how this shop signs people in, for the panel. */
export async function loadLoginModes() {
  try {
    const login = await api.getLogin();
    const shopUrl = login.shop_login_url
      ? `${login.shop_login_url}${login.shop_login_url.includes('?') ? '&' : '?'}return_to=${encodeURIComponent(location.href)}`
      : '';
    showLoginModes({ demo: Boolean(login.demo), shopUrl });
  } catch {
    showLoginModes({ demo: false, shopUrl: '' });
  }
}

/** The add button: the add itself when signed in, else the sign-in panel, the add kept. */
export function addOrSignIn(productId, add) {
  if (signedInUser()) { add(productId); return; }
  rememberAdd(productId);
  openSignInPanel('Sign in to put this in your cart; it will be added right away.');
}

/** Keeps an add to make later in the picked sale (after sign-in, or once admitted). */
export function rememberAdd(productId) {
  sessionStorage.setItem(PENDING_ADD, JSON.stringify({ sale: pickedSale().name, productId }));
}

/** After sign-in: the add a visitor asked for in this sale, made now. */
export function finishPendingAdd(add) {
  const text = sessionStorage.getItem(PENDING_ADD);
  sessionStorage.removeItem(PENDING_ADD);
  if (!text) return;
  try {
    const pending = JSON.parse(text);
    if (pending.sale === pickedSale().name && Number.isInteger(pending.productId)) add(pending.productId);
  } catch { /* a value of another version: nothing to finish */ }
}

export async function signIn(event) {
  event.preventDefault();
  const name = typedUsername();
  if (!USERNAME_RE.test(name)) {
    showSignInError('Use 1 to 64 letters, digits, “-”, “_” or “.”.', true);
    return;
  }
  showSignInError('');
  setSignInBusy(true);
  try {
    setUser(userNameOf(await api.signIn(name)) || name);
  } catch (err) {
    showSignInError(api.friendly(err));
  } finally {
    setSignInBusy(false);
  }
}

export async function signOut() {
  try {
    await api.signOut();
  } catch (err) {
    if (err.status !== 401) { handleError(err); return; }
  }
  // The carts belong to this user; the next one to sign in on this tab must not inherit them.
  dropCart('idle');
  forgetCarts();
  stopOrder();
  setUser(null);
}
