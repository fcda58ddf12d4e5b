-- FLASH.LOAD sale [TOTAL] sku units [sku units ...]
-- core/src/cmd/load.rs: sets each SKU's available units, moving loaded by the difference so
-- that loaded = available + held + pending + sold keeps holding. Pairs apply in order. With
-- TOTAL, units is the whole unsold stock: available = units - held - pending.
return run(function()
    local args, sale_name = begin('FLASH.LOAD')
    local total = args:accept(KW.TOTAL)
    local stock = {}
    repeat
        local sku = args:sku()
        local new_available = args:int('units', 0, MAX_UNITS)
        stock[#stock + 1] = { sku = sku, units = new_available }
    until args:remaining() == 0
    args:finish()

    require_sale(sale_name)
    if total then
        -- Every pair is checked before the first is written.
        for _, pair in ipairs(stock) do
            local taken = (stock_units(C_HELD, pair.sku) or 0)
                + (stock_units(C_PENDING, pair.sku) or 0)
            if pair.units < taken then
                fail(E.ERR, 'sku ' .. int_text(pair.sku) .. ': total ' .. int_text(pair.units)
                    .. ' is below the ' .. int_text(taken) .. ' units held or pending')
            end
            pair.units = pair.units - taken
        end
    end
    -- No SKU's loaded units may pass MAX_LOADED_UNITS (a SKU named twice is followed through
    -- both pairs); checked before the first pair is written.
    local after = {}
    for _, pair in ipairs(stock) do
        local state = after[pair.sku]
        if state == nil then
            state = { available = stock_units(C_AVAILABLE, pair.sku) or 0,
                loaded = stock_units(C_LOADED, pair.sku) or 0 }
            after[pair.sku] = state
        end
        state.loaded = state.loaded + pair.units - state.available
        state.available = pair.units
        if state.loaded > MAX_LOADED_UNITS then
            fail(E.ERR, 'sku ' .. int_text(pair.sku) .. ': loading ' .. int_text(pair.units)
                .. ' units would carry its loaded units past ' .. int_text(MAX_LOADED_UNITS))
        end
    end
    guard({ KEYS_STOCK })
    for _, pair in ipairs(stock) do
        local before = stock_units(C_AVAILABLE, pair.sku) or 0
        add_units(C_LOADED, pair.sku, pair.units - before)
        set_units(C_AVAILABLE, pair.sku, pair.units)
        publish_available(pair.sku, pair.units)
    end
    return #stock
end)
