/* Signing in and out. Who is signed in lives in state (setUser); app.js reacts to it. */

import * as api from './api.js';
import { handleError } from './errors.js';
import { dropCart, forgetCarts, setUser } from './state.js';
import { stopOrder } from './order.js';
import { renderGridMessage } from './views/catalog.js';
import { setSignInBusy, showSignInError, typedUsername } from './views/session.js';

const USERNAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

const userNameOf = (me) => (me && me.user && me.user.username) || '';

/** At boot: the session cookie may already name someone. */
export async function checkSession() {
  try {
    setUser(userNameOf(await api.getSession()) || 'you');
  } catch (err) {
    if (err.status === 401) setUser(null);
    else renderGridMessage('We couldn’t reach the shop.', checkSession);
  }
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
