/*
 * The shop's sales: the list behind the picker (GET /sales/) and the shopper's pick. The pick
 * itself is state's (pickedSale, kept in the URL); app.js moves the whole shop to it.
 */

import * as api from './api.js';
import { MESSAGES } from './api.js';
import { pickSale, pickedSale, setSales, shopSales } from './state.js';
import { toast } from './views/toasts.js';

/** After sign-in. Failing, the picker stays hidden and the picked sale is still served. */
export async function loadSales() {
  let reply;
  try { reply = await api.getSales(); } catch { return; }
  const sales = (reply && Array.isArray(reply.sales) ? reply.sales : [])
    .filter((s) => s && typeof s.sale === 'string');
  if (!sales.length) return;
  setSales({ sales, now_ms: Number(reply.now_ms) || Date.now() });
  // A link to a sale the shop no longer runs lands on the default sale.
  const { name } = pickedSale();
  if (name && !sales.some((s) => s.sale === name)) {
    toast('NOSALE', MESSAGES.NOSALE);
    pickSale(null);
  }
}

/** A click on the picker: the default sale is served at the seed's paths (name null). */
export function chooseSale(name) {
  const entry = shopSales().sales.find((s) => s.sale === name);
  if (entry) pickSale(entry.default ? null : entry.sale);
}
