/* Signed in or not: the user box, the cart button, the shop, and the sign-in form. */

import { $, initials } from './dom.js';

export function showSignedIn(name) {
  $('user-name').textContent = name;
  $('user-avatar').textContent = initials(name).slice(0, 1);
  $('user-box').hidden = false;
  $('cart-button').hidden = false;
  $('signin').hidden = true;
  $('shop').hidden = false;
}

export function showSignInForm() {
  $('user-box').hidden = true;
  $('cart-button').hidden = true;
  $('shop').hidden = true;
  $('signin').hidden = false;
  $('signin-username').focus();
}

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
