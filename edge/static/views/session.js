/* Signed in or a visitor: the user box, the cart button, the Sign in button, and the sign-in
   panel over the shop (the shop itself stays on screen either way). */

import { $, initials } from './dom.js';

export function showSignedIn(name) {
  $('user-name').textContent = name;
  $('user-avatar').textContent = initials(name).slice(0, 1);
  $('user-box').hidden = false;
  $('cart-button').hidden = false;
  $('signin-open').hidden = true;
  closeSignInPanel();
}

/** A visitor: browses the catalog and its live stock; the cart asks for an account. */
export function showVisitor() {
  $('user-box').hidden = true;
  $('cart-button').hidden = true;
  $('signin-open').hidden = false;
}

/** How the shop signs people in: its own login (a link out, back with a token) and/or the
    demo login's form. */
export function showLoginModes({ demo, shopUrl }) {
  $('signin-demo').hidden = !demo;
  const shop = $('signin-shop');
  shop.hidden = !shopUrl;
  if (shopUrl) shop.href = shopUrl;
}

export function openSignInPanel(why) {
  if (why) $('signin-why').textContent = why;
  $('signin').hidden = false;
  const input = $('signin-username');
  if (!$('signin-demo').hidden) input.focus();
}

export function closeSignInPanel() {
  $('signin').hidden = true;
}

export const isSignInOpen = () => !$('signin').hidden;

export const typedUsername = () => $('signin-username').value.trim();

/** An error under the field; invalid marks the field itself as the culprit. */
export function showSignInError(text, invalid = false) {
  const input = $('signin-username');
  $('signin-error').textContent = text;
  if (invalid) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  } else {
    input.removeAttribute('aria-invalid');
  }
}

export function setSignInBusy(busy) {
  $('signin-submit').disabled = busy;
}
