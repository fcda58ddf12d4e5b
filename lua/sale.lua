-- FLASH.SALE sale [HOLD ms] [LIMIT units] [START unix_ms] [END unix_ms] [RETAIN ms]
--   [RATE per_second] [CAP admissions] [ADMIT ms] [IDLE ms] [SEED hex]
-- core/src/cmd/sale.rs: creates the sale or changes the settings given; replies OK.
return run(function()
    local args = begin('FLASH.SALE')
    local hold_ms, limit, start_ms, end_ms, retain_ms
    local queue_rate, queue_cap, admit_ms, idle_ms, seed
    while args:remaining() > 0 do
        local option = args:keyword()
        if option == KW.HOLD then
            hold_ms = args:int(KW.HOLD, 1, MAX_HOLD_MS)
        elseif option == KW.LIMIT then
            limit = args:int(KW.LIMIT, 0, MAX_UNITS)
        elseif option == KW.START then
            start_ms = args:int(KW.START, 0, MAX_TIME_MS)
        elseif option == KW.END then
            end_ms = args:int(KW.END, 0, MAX_TIME_MS)
        elseif option == KW.RETAIN then
            retain_ms = args:int(KW.RETAIN, 0, MAX_RETAIN_MS)
        elseif option == KW.RATE then
            queue_rate = args:int(KW.RATE, 0, MAX_QUEUE_RATE)
        elseif option == KW.CAP then
            queue_cap = args:int(KW.CAP, 0, MAX_UNITS)
        elseif option == KW.ADMIT then
            admit_ms = args:int(KW.ADMIT, 1, MAX_HOLD_MS)
        elseif option == KW.IDLE then
            idle_ms = args:int(KW.IDLE, 1, MAX_HOLD_MS)
        elseif option == KW.SEED then
            seed = parse_seed(args:raw())
            if seed == nil then
                fail(E.ERR, KW.SEED .. ' must be ' .. int_text(MIN_SEED_LEN) .. ' to '
                    .. int_text(MAX_SEED_LEN) .. ' hex digits')
            end
        else
            fail(E.ERR, 'unknown option ' .. quoted(option) .. '; expected HOLD, LIMIT, START, '
                .. 'END, RETAIN, RATE, CAP, ADMIT, IDLE or SEED')
        end
    end
    args:finish()

    local existing = read_sale()
    -- The deadline lists as they were (a new sale has none).
    local earlier_lanes = existing and lanes_to_look_at(existing) or {}
    local sale = existing or default_sale()
    sale.hold_ms = hold_ms or sale.hold_ms
    sale.limit = limit or sale.limit
    sale.start_ms = start_ms or sale.start_ms
    sale.end_ms = end_ms or sale.end_ms
    sale.retain_ms = retain_ms or sale.retain_ms
    if sale.start_ms > 0 and sale.end_ms > 0 and sale.end_ms <= sale.start_ms then
        fail(E.ERR, 'END must be after START')
    end
    sale.queue_rate = queue_rate or sale.queue_rate
    sale.queue_cap = queue_cap or sale.queue_cap
    sale.admit_ms = admit_ms or sale.admit_ms
    sale.idle_ms = idle_ms or sale.idle_ms
    if seed and seed ~= sale.seed then
        -- The line's pre-queue places were drawn from the old seed.
        if call('ZCARD', LINE_KEY) > 0 then
            fail(E.ERR, 'SEED cannot change while shoppers wait in the line')
        end
        sale.seed = seed
    end
    if has_queue(sale) and sale.seed == '' then
        fail(E.ERR, 'a waiting room needs SEED (' .. int_text(MIN_SEED_LEN) .. ' to '
            .. int_text(MAX_SEED_LEN) .. ' hex digits), committed before START')
    end
    -- sale.rs lanes_after: the new HOLD's deadline list, and each earlier one that still
    -- has entries.
    local lanes = { sale.hold_ms }
    for _, earlier in ipairs(earlier_lanes) do
        if earlier ~= sale.hold_ms then
            local deadlines_key = lane_key(earlier)
            guard({}, nil, deadlines_key)
            if call('LLEN', deadlines_key) > 0 and not add_lane(lanes, earlier) then
                fail(E.ERR, 'HOLD cannot change now: ' .. int_text(MAX_LANES)
                    .. ' holds are in use by held carts; try again once the oldest have run out')
            end
        end
    end
    sale.lanes = lanes
    guard({ KEYS_SALE })
    write_sale(sale)
    return { ok = 'OK' }
end)
