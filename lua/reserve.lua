-- FLASH.RESERVE sale cart user sku [qty]
-- core/src/cmd/reserve.rs: replies [available, deadline_ms, cart_units].
return run(function()
    local args, sale_name = begin('FLASH.RESERVE')
    local cart_id = args:token('cart')
    local user = args:token('user')
    local sku = args:sku()
    local qty = args:qty()
    args:finish()
    -- One constructor: a table grown field by field is rehashed as it grows.
    local r = { sale = sale_name, cart = cart_id, user = user, sku = sku, qty = qty,
        cart_key = declared_cart_key(cart_id) }

    local left, cart = reserve(r)
    return { left, cart.deadline_ms, cart.units }
end)
