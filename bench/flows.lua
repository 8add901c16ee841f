-- make bench: connect flows, /start then /cb, as fast as one nginx worker
-- completes them.  A /start answer gives the state (in the redirect to the
-- provider) and the binding cookie; the next request sends them to /cb.
-- globals: done() runs in another Lua state and reads them per thread
local pending, started = {}, 0
local threads = {}
connected = 0
local run = tostring(os.time())

request = function()
    local cb = table.remove(pending)
    if cb then
        return wrk.format("GET", "/cb?code=x&state=" .. cb.state,
                          { ["Cookie"] = cb.cookie })
    end
    started = started + 1
    return wrk.format("GET", "/start",
                      { ["X-User"] = "f" .. run .. "-" .. started })
end

response = function(status, headers)
    local loc = headers["Location"] or ""
    local state = loc:match("[?&]state=([^&]+)")
    if state and loc:find("/authorize", 1, true) then
        local cookie = (headers["Set-Cookie"] or ""):match("^[^;]+") or ""
        table.insert(pending, { state = state, cookie = cookie })
    elseif loc:find("oauth_status=connected", 1, true) then
        connected = connected + 1
    end
end

setup = function(thread)
    table.insert(threads, thread)
end

done = function(summary)
    local n = 0
    for _, t in ipairs(threads) do
        n = n + t:get("connected")
    end
    io.write(string.format("flows %d %.3f\n", n,
                           summary.duration / 1e6))
end
