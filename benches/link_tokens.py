"""Creates N link invitations to a survey through the API, 1,000 per request, and prints their
tokens, one per line (the input of benches/answers.lua).

Usage: python3 benches/link_tokens.py PORT API_KEY SURVEY_ID N > tokens
"""
import json
import sys
import urllib.request

port, key, survey, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for b in range((n + 999) // 1000):
    body = json.dumps({"channel": "link", "contacts": [{"email": f"p{b}-{i}@example.com"} for i in range(min(1000, n - b * 1000))]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/surveys/{survey}/invitations", data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    for item in json.load(urllib.request.urlopen(req))["items"]:
        print(item["url"].rsplit("/", 1)[1])
