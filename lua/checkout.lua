-- FLASH.CHECKOUT sale cart user
-- core/src/cmd/checkout.rs: turns a held cart into an order, once; replies
-- [order, entry_id, units], the same again on a repeat.
return run(function()
    local args, sale_name = begin('FLASH.CHECKOUT')
    local c = { sale = sale_name }
    c.cart = args:token('cart')
    c.user = args:token('user')
    args:finish()
    c.cart_key = declared_cart_key(c.cart)

    return checkout(c)
end)
