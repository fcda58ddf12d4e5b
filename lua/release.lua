-- FLASH.RELEASE sale cart user sku [qty]
-- core/src/cmd/release.rs: gives units of a held cart back; the cart keeps its deadline even
-- when it becomes empty, and the sale need not be open. Replies like FLASH.RESERVE.
return run(function()
    local args, sale_name = begin('FLASH.RELEASE')
    local cart_id = args:token('cart')
    local user = args:token('user')
    local sku = args:sku()
    local qty = args:qty()
    args:finish()
    local cart_key = declared_cart_key(cart_id)

    local at_ms = now_ms()
    require_sale(sale_name)
    local cart = require_cart(cart_key, cart_id)
    check_owner(cart_id, cart, user)
    check_live(cart_id, cart, at_ms)
    local line = cart_line(cart, sku)
    if line == 0 then
        fail(E.NOSKU, 'cart ' .. quoted(cart_id) .. ' holds no units of sku ' .. int_text(sku))
    end
    if qty > line then
        fail(E.ERR, 'cart ' .. quoted(cart_id) .. ' holds only ' .. int_text(line)
            .. ' units of sku ' .. int_text(sku))
    end
    guard({ KEYS_STOCK, KEYS_USERS }, cart_key)

    local available = add_units(C_AVAILABLE, sku, qty)
    add_units(C_HELD, sku, -qty)
    add_user_units(user, -qty)
    set_cart_line(cart, sku, line - qty)
    cart.units = cart.units - qty
    write_cart(cart_key, cart)
    publish_available(sku, available)
    return { available, cart.deadline_ms, cart.units }
end)
