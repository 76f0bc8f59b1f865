-- wrk script: POST /s/{token} with a realistic NPS mix, cycling through the tokens in
-- the file named by TOKENS (one per line); each wrk thread starts at its own offset.
-- MODE=getpost: each customer first opens the page (GET /s/{token}), then submits it (POST),
-- so half of the requests are answers.
local tokens = {}
local scores = {10, 9, 10, 9, 8, 7, 8, 6, 3, 10}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  counter = id * math.floor(#tokens / 2)
end

local getpost = os.getenv("MODE") == "getpost"
local opened = false

function request()
  if getpost and not opened then
    opened = true
    local token = tokens[((counter + 1) % #tokens) + 1]
    return wrk.format("GET", "/s/" .. token)
  end
  opened = false
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  local score = scores[(counter % #scores) + 1]
  local body = "score=" .. score .. "&comment=bench+answer+" .. counter
  return wrk.format("POST", "/s/" .. token, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
