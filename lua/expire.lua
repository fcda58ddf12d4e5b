-- FLASH.EXPIRE sale [COUNT n]
-- core/src/cmd/expire.rs: releases up to COUNT holds past their deadline, earliest first;
-- replies the number of carts expired.
--
-- A script may only touch the keys it is given, so the cart keys are the due carts the
-- client saw. A due cart the client did not pass is left for the next call; it stops nothing.
return run(function()
    local args, sale_name = begin('FLASH.EXPIRE')
    local count = DEFAULT_EXPIRE_COUNT
    while args:remaining() > 0 do
        local option = args:keyword()
        if option == KW.COUNT then
            count = args:int(KW.COUNT, 1, MAX_EXPIRE_COUNT)
        else
            fail(E.ERR, 'unknown option ' .. quoted(option) .. '; expected COUNT')
        end
    end
    args:finish()

    local at_ms = now_ms()
    require_sale(sale_name)
    local due = call('ZRANGE', DEADLINES_KEY, '-inf', int_text(at_ms), 'BYSCORE', 'LIMIT', 0,
        int_text(count))
    if #due == 0 then
        return 0
    end

    local declared = {}
    for i = FIRST_CART_KEY, #KEYS do
        declared[KEYS[i]] = true
    end
    local reachable = {}
    for _, cart_id in ipairs(due) do
        local key = cart_key_name(sale_name, cart_id)
        if declared[key] then
            reachable[#reachable + 1] = { id = cart_id, key = key }
        end
    end
    guard({ KEYS_STOCK, KEYS_USERS, KEYS_DEADLINES })

    local expired = 0
    for _, due_cart in ipairs(reachable) do
        call('ZREM', DEADLINES_KEY, due_cart.id)
        -- A deadline whose cart is gone, no longer held, or not a Flash cart at all (a key of
        -- another type, a hash without a state: written by hand) is stale. Dropping it is all
        -- there is to do, and one bad key must not stall the sale's expiry.
        local readable, cart = pcall(function()
            guard({}, due_cart.key)
            return read_cart(due_cart.key)
        end)
        if not readable then
            local wrong_type = type(cart) == 'table' and cart.flash_error
                and cart.flash_error:sub(1, #E.WRONGTYPE) == E.WRONGTYPE
            if not wrong_type then
                error(cart)
            end
            cart = nil
        end
        if cart and cart.state == S_HELD then
            for _, line in ipairs(cart.lines) do
                add_units(C_HELD, line.sku, -line.qty)
                publish_available(line.sku, add_units(C_AVAILABLE, line.sku, line.qty))
            end
            add_user_units(cart.user, -cart.units)
            cart.state = S_EXPIRED
            write_cart(due_cart.key, cart)
            expired = expired + 1
        end
    end
    return expired
end)
