-- FLASH.EXPIRE sale [COUNT n]
-- core/src/cmd/expire.rs: releases up to COUNT holds past their deadline, earliest first,
-- for about a millisecond of work at most, then trims the order stream (what every group acknowledged and older than RETAIN);
-- replies the number of carts expired.
--
-- The cart keys are the due carts the client saw (the client reads the deadline lists
-- first). A due cart the client did not pass is left for the next call.

-- Microseconds by the server's clock, for the work budget (EXPIRE_BUDGET_US): a call with a
-- backlog stops and replies, and the caller calls again.
local function clock_us()
    local time = redis.call('TIME')
    return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- Releases the due holds among the carts this call was given, earliest deadline first over
-- the sale's deadline lists, for at most EXPIRE_BUDGET_US; returns how many expired. Each list
-- is in deadline order, so its due entries are a run from its head: the entries handled are
-- popped from the heads at the end (one LPOP per list). A due entry whose cart the client did
-- not pass stops its list for this call (it must stay at the head); the others go on.
local function release_due(sale, count, at_ms)
    local declared = {}
    for i = FIRST_CART_KEY, #KEYS do
        declared[KEYS[i]] = true
    end
    -- Each list: its key, its first entries as { ms, cart }, the next to look at. No more
    -- are read than the carts passed could use (and a few stale entries besides).
    local window = math.min(count, #KEYS - #SALE_KEYS + 64)
    local lists = {}
    for _, hold_ms in ipairs(lanes_to_look_at(sale)) do
        local deadlines_key = lane_key(hold_ms)
        guard({}, nil, deadlines_key)
        local entries = {}
        for _, entry in ipairs(call('LRANGE', deadlines_key, 0, window - 1)) do
            local at = entry:find(DEADLINE_SEPARATOR, 1, true)
            -- An entry Flash did not write is due at once: dropped as stale (as the module).
            local ms = at and stored_int(entry:sub(1, at - 1)) or -math.huge
            entries[#entries + 1] = { ms = ms, cart = at and entry:sub(at + 1) or '' }
        end
        lists[#lists + 1] = { key = deadlines_key, entries = entries, next = 1 }
    end
    local stop_at_us
    local expired, looked = 0, 0
    while looked < count do
        -- The list whose next entry is due earliest.
        local list
        for _, candidate in ipairs(lists) do
            local entry = candidate.entries[candidate.next]
            if entry and entry.ms <= at_ms
                and (list == nil or entry.ms < list.entries[list.next].ms) then
                list = candidate
            end
        end
        if list == nil then
            break
        end
        local entry = list.entries[list.next]
        local cart_key = cart_key_name(entry.cart)
        if declared[cart_key] or entry.ms == -math.huge then
            if stop_at_us == nil then
                guard({ KEYS_STOCK, KEYS_USERS })
                stop_at_us = clock_us() + EXPIRE_BUDGET_US
            end
            list.next = list.next + 1
            looked = looked + 1
            -- A deadline whose cart is gone, no longer held, not yet due (a later cart of the
            -- same id), or not a Flash cart at all (a key of another type, a string that is no
            -- cart record: written by hand) is stale. Dropping it is all there is to do, and one
            -- bad key must not stall the sale's expiry.
            local cart
            if declared[cart_key] then
                local readable
                readable, cart = pcall(function()
                    guard({}, cart_key)
                    return read_cart(cart_key)
                end)
                if not readable then
                    local wrong_type = type(cart) == 'table' and cart.flash_error
                        and cart.flash_error:sub(1, #E.WRONGTYPE) == E.WRONGTYPE
                    if not wrong_type then
                        error(cart)
                    end
                    cart = nil
                end
            end
            if cart and cart.state == S_HELD and cart.deadline_ms <= at_ms then
                for _, line in ipairs(cart.lines) do
                    add_units(C_HELD, line.sku, -line.qty)
                    publish_available(line.sku, add_units(C_AVAILABLE, line.sku, line.qty))
                end
                add_user_units(cart.user, -cart.units)
                add_held_carts(-1)
                cart.state = S_EXPIRED
                write_cart(cart_key, cart)
                retire_cart(sale, cart_key, at_ms)
                expired = expired + 1
            end
            if clock_us() >= stop_at_us then
                break
            end
        else
            -- Not passed by the client: this list waits for the next call.
            list.entries = {}
        end
    end
    for _, handled in ipairs(lists) do
        if handled.next > 1 then
            call('LPOP', handled.key, handled.next - 1)
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
    local count = count_option(args, DEFAULT_EXPIRE_COUNT, MAX_EXPIRE_COUNT)

    local at_ms = now_ms()
    local sale = require_sale(sale_name)
    if sale.retain_ms > 0 then
        -- The trim reads the order stream: a key of another type there must refuse the
        -- command before the release has written anything.
        guard({ KEYS_ORDERS })
    end
    local expired = release_due(sale, count, at_ms)
    trim_orders(sale, at_ms)
    return expired
end)
