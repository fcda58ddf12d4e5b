-- FLASH.ADMIT sale [COUNT n]
-- core/src/cmd/admit.rs: ends the admissions that ran out unused, drops the waiting shoppers
-- who stopped asking for IDLE, then, while the sale is open, admits from the front of the
-- line as the RATE allows (a token bucket of one second) and under the CAP; each kind of
-- work at most COUNT entries. Replies [admitted, lapsed, abandoned, waiting], all 0 when the
-- sale has no waiting room. The module runs it by itself every 50 ms; with the twin the
-- worker calls it.

-- The bucket holds at most QUEUE_CREDIT_WINDOW_MS of admissions (a header constant); the
-- credit is kept in thousandths of an admission.

-- Store::lowest: up to `count` users of the sorted set with a score at or below `max_score`
-- ('+inf': no bound), lowest first (equal scores by name).
local function lowest(key, max_score, count)
    return call('ZRANGEBYSCORE', key, '-inf', max_score, 'LIMIT', 0, count)
end

-- Admit::admit: admits from the front of the line; returns how many.
local function admit_front(sale, count, at_ms, waiting)
    local room = math.huge
    if sale.queue_cap > 0 then
        room = math.max(sale.queue_cap - call('ZCARD', ADMITTED_KEY), 0)
    end
    -- The bucket fills at RATE per second from START (or from its last count), up to a
    -- second's worth; kept in thousandths, so no admission is lost to rounding.
    local credit
    local allowed = math.huge
    if sale.queue_rate > 0 then
        local held = queue_counter(Q_CREDIT_MILLI)
        local counted_at = math.max(queue_counter(Q_CREDIT_AT_MS), sale.start_ms)
        local elapsed = math.min(math.max(at_ms - counted_at, 0), QUEUE_CREDIT_WINDOW_MS)
        credit = math.min(held + elapsed * sale.queue_rate, QUEUE_CREDIT_WINDOW_MS * sale.queue_rate)
        -- i64 division: toward zero.
        allowed = credit - math.fmod(credit, 1000)
        allowed = allowed / 1000
    end
    local take = math.min(count, room, allowed, waiting)
    local front = {}
    if take > 0 then
        front = lowest(LINE_KEY, '+inf', take)
    end
    local until_ms = at_ms + sale.admit_ms
    for _, user in ipairs(front) do
        set_score(LINE_KEY, user, nil)
        set_score(SEEN_KEY, user, nil)
        set_score(ADMITTED_KEY, user, until_ms)
    end
    if credit then
        set_queue_counter(Q_CREDIT_MILLI, credit - #front * 1000)
        set_queue_counter(Q_CREDIT_AT_MS, at_ms)
    end
    return #front
end

return run(function()
    local args, sale_name = begin('FLASH.ADMIT')
    local count = count_option(args, DEFAULT_ADMIT_COUNT, MAX_ADMIT_COUNT)

    local at_ms = now_ms()
    local sale = require_sale(sale_name)
    if not has_queue(sale) then
        return { 0, 0, 0, 0 }
    end
    guard({ KEYS_QUEUE, KEYS_LINE, KEYS_SEEN, KEYS_ADMITTED })
    local lapsed = lowest(ADMITTED_KEY, int_text(at_ms), count)
    for _, user in ipairs(lapsed) do
        set_score(ADMITTED_KEY, user, nil)
    end
    -- Seen before at_ms - IDLE: idle for longer than IDLE.
    local abandoned = lowest(SEEN_KEY, int_text(at_ms - sale.idle_ms - 1), count)
    for _, user in ipairs(abandoned) do
        set_score(LINE_KEY, user, nil)
        set_score(SEEN_KEY, user, nil)
    end
    local waiting = call('ZCARD', LINE_KEY)
    local admitted = 0
    if is_open(sale, at_ms) and waiting > 0 then
        admitted = admit_front(sale, count, at_ms, waiting)
    end
    for _, counted in ipairs({ { Q_ADMITTED, admitted }, { Q_LAPSED, #lapsed },
        { Q_ABANDONED, #abandoned } }) do
        if counted[2] > 0 then
            set_queue_counter(counted[1], queue_counter(counted[1]) + counted[2])
        end
    end
    return { admitted, #lapsed, #abandoned, waiting - admitted }
end)
