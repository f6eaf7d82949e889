"""The official OpenAI SDK, with its default retries, against a client key over its limit: the
proxy's 429 client_rate_limited carries Retry-After, and the SDK waits and gets through by
itself. Exits non-zero on failure.

Usage: openai_retry_client.py BASE_URL CLIENT_KEY
"""

import sys
import time

import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
started = time.monotonic()
raw = client.chat.completions.with_raw_response.create(
    model="llama-3.3-70b", messages=[{"role": "user", "content": "Hello!"}]
)
answer = raw.parse()
assert answer.choices[0].message.content == "Hi", answer
assert raw.retries_taken >= 1, f"the first attempt should have met the limit: {raw.retries_taken}"
assert time.monotonic() - started >= 0.9, "the SDK waited for Retry-After"
print("openai sdk retry: ok after", raw.retries_taken, "retries")
