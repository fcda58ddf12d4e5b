-- FLASH.BUY sale order user sku [qty]
-- core/src/cmd/buy.rs: reserve then checkout, a single-item order; an order already made is
-- returned as it is.
return run(function()
    local args, sale_name = begin('FLASH.BUY')
    local r = { sale = sale_name }
    r.cart = args:token('order')
    r.user = args:token('user')
    r.sku = args:sku()
    r.qty = args:qty()
    args:finish()
    r.cart_key = declared_cart_key(r.cart)

    -- Read once: reserve and checkout take the settings from here.
    r.settings = require_sale(sale_name)
    local existing = read_cart(r.cart_key)
    if existing and is_order(existing.state) then
        check_owner(r.cart, existing, r.user)
        return order_reply(r.cart, existing)
    end
    -- Once the reserve succeeds the checkout cannot fail (same clock reading, a held,
    -- non-empty, live cart), provided its keys hold the right types: guarded by reserve.
    reserve(r, CHECKOUT_KEYS)
    return checkout(r)
end)
