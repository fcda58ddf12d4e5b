-- FLASH.EXPIRE sale [COUNT n]
-- core/src/cmd/expire.rs: releases up to COUNT holds past their deadline, earliest first,
-- for about a millisecond of work at most, then trims the order stream (what every group acknowledged and older than RETAIN);
-- replies the number of carts expired.
--
-- A script may only touch the keys it is given, so the cart keys are the due carts the
-- client saw. A due cart the client did not pass is left for the next call; it stops nothing.

-- Microseconds by the server's clock, for the work budget (EXPIRE_BUDGET_US): a call with a
-- backlog stops and replies, and the caller calls again.
local function clock_us()
    local time = redis.call('TIME')
    return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- Releases the due holds among the carts this call was given, for at most EXPIRE_BUDGET_US;
-- returns how many expired.
local function release_due(sale, sale_name, due, at_ms)
    local declared = {}
    for i = FIRST_CART_KEY, #KEYS do
        declared[KEYS[i]] = true
    end
    local reachable = {}
    for _, cart_id in ipairs(due) do
        local key = cart_key_name(cart_id)
        if declared[key] then
            reachable[#reachable + 1] = { id = cart_id, key = key }
        end
    end
    guard({ KEYS_STOCK, KEYS_USERS, KEYS_DEADLINES })

    local stop_at_us = clock_us() + EXPIRE_BUDGET_US
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
            retire_cart(sale, due_cart.key, at_ms)
            expired = expired + 1
        end
        if clock_us() >= stop_at_us then
            break
        end
    end
    return expired
end

-- A stream id `<ms>-<seq>` as { ms, seq } (both exact in a double: ms < 2^53). One that
-- does not read so is 0-0: a group we cannot read may need everything, so nothing goes.
local function stream_id(text)
    local ms, seq = tostring(text):match('^(%d+)%-(%d+)$')
    if ms == nil then
        return { 0, 0 }
    end
    return { tonumber(ms), tonumber(seq) }
end

local function stream_id_less(a, b)
    return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

-- Removes the order-stream entries every consumer group has acknowledged and older than
-- RETAIN (Expire::trim_orders): below the oldest entry a group has pending, or else the one
-- it was last given. No group: nobody has read anything, nothing goes.
local function trim_orders(sale, at_ms)
    if sale.retain_ms == 0 or call('EXISTS', ORDERS_KEY) == 0 then
        return
    end
    local needed
    for _, group in ipairs(call('XINFO', 'GROUPS', ORDERS_KEY)) do
        local info = hash_to_map(group)
        local from = info['last-delivered-id']
        if info.pending > 0 then
            from = call('XPENDING', ORDERS_KEY, info.name)[2]
        end
        local from_id = stream_id(from)
        if needed == nil or stream_id_less(from_id, needed) then
            needed = from_id
        end
    end
    if needed == nil then
        return
    end
    local retained_from = { math.max(at_ms - sale.retain_ms, 0), 0 }
    if stream_id_less(retained_from, needed) then
        needed = retained_from
    end
    if needed[1] == 0 and needed[2] == 0 then
        return
    end
    guard({ KEYS_ORDERS })
    call('XTRIM', ORDERS_KEY, 'MINID', int_text(needed[1]) .. '-' .. int_text(needed[2]))
end

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
    local sale = require_sale(sale_name)
    local due = call('ZRANGE', DEADLINES_KEY, '-inf', int_text(at_ms), 'BYSCORE', 'LIMIT', 0,
        int_text(count))
    if sale.retain_ms > 0 then
        -- The trim reads the order stream: a key of another type there must refuse the
        -- command before the release has written anything.
        guard({ KEYS_ORDERS })
    end
    local expired = 0
    if #due > 0 then
        expired = release_due(sale, sale_name, due, at_ms)
    end
    trim_orders(sale, at_ms)
    return expired
end)
