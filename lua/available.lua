-- FLASH.AVAILABLE sale sku [sku ...]
-- core/src/cmd/available.rs: units per SKU in argument order, nil for a SKU never loaded.
return run(function()
    local args, sale_name = begin('FLASH.AVAILABLE')
    local skus = {}
    repeat
        skus[#skus + 1] = args:sku()
    until args:remaining() == 0
    args:finish()

    require_sale(sale_name)
    local reply = {}
    for index, sku in ipairs(skus) do
        -- false, not nil: a nil would end the reply array early.
        reply[index] = stock_units(C_AVAILABLE, sku) or false
    end
    return reply
end)
