-- FLASH.RESERVE sale cart user sku [qty]
-- core/src/cmd/reserve.rs: replies [available, deadline_ms, cart_units].
return run(function()
    local args, sale_name = begin('FLASH.RESERVE')
    local r = { sale = sale_name }
    r.cart = args:token('cart')
    r.user = args:token('user')
    r.sku = args:sku()
    r.qty = args:qty()
    args:finish()
    r.cart_key = declared_cart_key(r.cart)

    local left, cart = reserve(r)
    return { left, cart.deadline_ms, cart.units }
end)
