-- FLASH.JOIN sale user
-- core/src/cmd/join.rs: joins the sale's waiting room, or keeps the place already held (a
-- sign of life, like FLASH.POSITION). Before START the place is drawn from the sale's seed,
-- from START on it is the next ticket, at the end of the line. Replies as FLASH.POSITION.
return run(function()
    local args, sale_name = begin('FLASH.JOIN')
    local user = args:token('user')
    args:finish()

    local at_ms = now_ms()
    local sale = require_queue(sale_name)
    if sale.end_ms > 0 and at_ms >= sale.end_ms then
        fail(E.CLOSED, 'sale ' .. quoted(sale_name) .. ' is not open')
    end
    guard({ KEYS_QUEUE, KEYS_LINE, KEYS_SEEN, KEYS_ADMITTED })
    local until_ms = live_admission(user, at_ms)
    if until_ms then
        return admitted_reply(until_ms)
    end
    -- A new ticket is the highest score in the line: its place is the last.
    local ticketed = false
    if score_of(LINE_KEY, user) == nil then
        local score
        if at_ms < sale.start_ms then
            score = draw_score(sale.seed, user)
        else
            local ticket = queue_counter(Q_NEXT_TICKET)
            set_queue_counter(Q_NEXT_TICKET, ticket + 1)
            ticketed = true
            score = TICKET_BASE + ticket
        end
        set_score(LINE_KEY, user, score)
    end
    set_score(SEEN_KEY, user, at_ms)
    return place_reply(sale, user, at_ms, ticketed)
end)
