-- FLASH.CART sale cart
-- core/src/cmd/cart.rs: the cart's (or order's) fields; lines flat, ascending by SKU.
return run(function()
    local args, sale_name = begin('FLASH.CART')
    local cart_id = args:token('cart')
    args:finish()
    local cart_key = declared_cart_key(cart_id)

    require_sale(sale_name)
    local cart = require_cart(cart_key, cart_id)
    local lines = {}
    for _, line in ipairs(cart.lines) do
        lines[#lines + 1] = line.sku
        lines[#lines + 1] = line.qty
    end
    return {
        R.STATE, cart.state,
        R.USER, cart.user,
        R.DEADLINE_MS, cart.deadline_ms,
        R.UNITS, cart.units,
        R.LINES, lines,
        R.ENTRY, cart.entry or false,
    }
end)
