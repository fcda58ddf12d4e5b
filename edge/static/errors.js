/* One place that turns a failed call into UI: a toast, the sign-in form, a cooldown, or
   dropping a cart the server no longer has. */

import { ApiError, CART_GONE, MESSAGES, friendly } from './api.js';
import { coolDown, dropCart, setUser } from './state.js';
import { openSignInPanel } from './views/session.js';
import { toast } from './views/toasts.js';

export function handleError(err) {
  if (!(err instanceof ApiError)) {
    toast('ERROR', 'Something went wrong');
    return;
  }
  if (err.status === 401 || err.code === 'UNAUTHENTICATED') {
    setUser(null);
    openSignInPanel(MESSAGES.UNAUTHENTICATED);
    return;
  }
  if (err.code === 'RATE_LIMITED' || err.status === 429) coolDown(err.retryAfterMs);
  if (CART_GONE.has(err.code)) dropCart(err.code === 'EXPIRED' ? 'expired' : 'idle');
  toast(err.code, friendly(err));
}
