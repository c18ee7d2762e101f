-- mizan-hub publish script (SPEC sections 10 and 11, protocol version 1).
--
-- One EVALSHA updates the version counters and PUBLISHes the envelope, so
-- the counter order is the delivery order. The envelope is built by string
-- concatenation from JSON fragments the publisher encoded: cjson would turn
-- {} into [], escape "/" and print numbers with 14 significant digits, and
-- the hub must receive exactly the bytes the publisher checked.
--
-- ARGV[1] = "invalidate"
--   KEYS[i]  = {prefix}v:{context i}, one per distinct context
--   ARGV[2]  = the events channel ({prefix}events)
--   ARGV[3]  = the envelope up to the versions, without the closing brace:
--              {"v":1,"kind":"invalidate","ts":T,"invalidate":[...]
--   then per key i: the context name as a JSON string literal, the number
--   k of version fields to set, and those k field names ("u" or a bucket).
--   Returns the envelope text.
--
-- ARGV[1] = "message"
--   KEYS[1] = {prefix}c:{canonical key}, KEYS[2] = {prefix}h:{canonical key}
--   ARGV[2] = the events channel, ARGV[3] = ts (a JSON number),
--   ARGV[4] = the frame members "channel":..,"params":..,"type":..,"data":..
--   ARGV[5] = history size (0: the channel keeps none),
--   ARGV[6] = expiry of both keys in ms (0: none).
--   Returns {seq, epoch, envelope text}.

local function base36(n)
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  if n == 0 then return '0' end
  local out = ''
  while n > 0 do
    local d = n % 36
    out = string.sub(digits, d + 1, d + 1) .. out
    n = math.floor(n / 36)
  end
  return out
end

-- An epoch: base-36 seconds, then base-36 microseconds padded to 4 digits
-- (36^4 > 10^6), so that two epochs of one second still differ.
local function new_epoch()
  local t = redis.call('TIME')
  local us = base36(tonumber(t[2]))
  return base36(tonumber(t[1])) .. string.rep('0', 4 - #us) .. us
end

local function int(n)
  return string.format('%d', n)
end

local epoch = new_epoch()

if ARGV[1] == 'invalidate' then
  local versions = {}
  local a = 4
  for i = 1, #KEYS do
    local name = ARGV[a]
    local k = tonumber(ARGV[a + 1])
    a = a + 2
    redis.call('HSETNX', KEYS[i], 'e', epoch)
    local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
    local e = redis.call('HGET', KEYS[i], 'e')
    if k > 0 then
      local args = {}
      for j = 0, k - 1 do
        args[#args + 1] = ARGV[a + j]
        args[#args + 1] = n
      end
      redis.call('HSET', KEYS[i], unpack(args))
    end
    a = a + k
    versions[#versions + 1] = name .. ':"' .. e .. ':' .. int(n) .. '"'
  end
  local envelope = ARGV[3] .. ',"versions":{' .. table.concat(versions, ',') .. '}}'
  redis.call('PUBLISH', ARGV[2], envelope)
  return envelope
end

if ARGV[1] == 'message' then
  local size = tonumber(ARGV[5])
  local ttl = tonumber(ARGV[6])
  local created = redis.call('HSETNX', KEYS[1], 'e', epoch)
  local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
  local e = redis.call('HGET', KEYS[1], 'e')
  local s = int(seq)
  local tail = ',"seq":' .. s .. ',"epoch":"' .. e .. '"'
  if created == 1 then
    -- A new epoch: history of the old one (if any survived) is void, and
    -- XADD below needs ids above whatever it holds.
    redis.call('DEL', KEYS[2])
  end
  if size > 0 then
    local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
    if top[1] and tonumber(string.match(top[1][1], '^(%d+)')) >= seq then
      redis.call('DEL', KEYS[2])
    end
    local frame = '{' .. ARGV[4] .. tail .. ',"ts":' .. ARGV[3] .. '}'
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, s .. '-0', 'f', frame)
    if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  local envelope = '{"v":1,"kind":"message","ts":' .. ARGV[3] .. ',' .. ARGV[4] .. tail .. '}'
  redis.call('PUBLISH', ARGV[2], envelope)
  return {seq, e, envelope}
end

return redis.error_reply('mizan-hub publish: unknown mode ' .. tostring(ARGV[1]))
