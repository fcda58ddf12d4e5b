-- FLASH.SETTLE sale order OK|REJECT
-- core/src/cmd/settle.rs: the database's verdict on a checked-out order. The same verdict
-- again replies the same and changes nothing; a contradicting one is BADSTATE.
return run(function()
    local args, sale_name = begin('FLASH.SETTLE')
    local order_id = args:token('order')
    local verdict = args:keyword()
    if verdict ~= KW.OK and verdict ~= KW.REJECT then
        fail(E.ERR, 'verdict must be OK or REJECT')
    end
    args:finish()
    local cart_key = declared_cart_key(order_id)

    local at_ms = now_ms()
    local sale = require_sale(sale_name)
    local order = require_cart(cart_key, order_id)
    local target = verdict == KW.OK and S_SETTLED or S_REJECTED
    if order.state == target then
        return { ok = target }
    end
    if order.state ~= S_CHECKED_OUT then
        fail(E.BADSTATE, 'cart ' .. quoted(order_id) .. ' is ' .. order.state)
    end
    local destination = verdict == KW.OK and C_SOLD or C_AVAILABLE
    guard({ KEYS_STOCK, KEYS_USERS }, cart_key)

    for _, line in ipairs(order.lines) do
        add_units(C_PENDING, line.sku, -line.qty)
        local units_now = add_units(destination, line.sku, line.qty)
        if destination == C_AVAILABLE then
            publish_available(line.sku, units_now)
        end
    end
    if verdict == KW.REJECT then
        -- Refused units no longer count against the user's LIMIT.
        add_user_units(order.user, -order.units)
    end
    order.state = target
    write_cart(cart_key, order)
    retire_cart(sale, cart_key, at_ms)
    return { ok = target }
end)
