// Produces qsh-vectors.json: canonical requests and query string hashes
// computed by Atlassian's own implementation, the npm package atlassian-jwt.
//
//   npm install atlassian-jwt@2.0.3
//   node make-qsh-vectors.js > qsh-vectors.json
//
// The Go tests read the JSON; they never run Node.
const jwt = require('atlassian-jwt');

const site = 'https://your-domain.atlassian.net';
const dc = 'https://jira.example.com/jira';
const api = '/rest/servicedeskapi/servicedesk/1/customer';

const cases = [
  ['empty query', 'GET', site, site + api],
  ['empty query with ?', 'GET', site, site + api + '?'],
  ['simple list', 'GET', site, site + api + '?query=fred&start=0&limit=50'],
  ['sorted names', 'GET', site, site + api + '?start=50&limit=50&query=a'],
  ['space as %20', 'GET', site, site + api + '?query=John%20Smith'],
  ['space as +', 'GET', site, site + api + '?query=John+Smith'],
  ['literal plus', 'GET', site, site + api + '?query=a%2Bb'],
  ['star', 'GET', site, site + api + '?query=*fred*'],
  ['tilde', 'GET', site, site + api + '?query=~fred'],
  ['reserved in value', 'GET', site, site + api + '?query=a%26b%3Dc'],
  ['sub-delims in value', "GET", site, site + api + "?query=%21%27%28%29%2C%3B%3A%40%24"],
  ['non-ascii', 'GET', site, site + api + '?query=' + encodeURIComponent('Zoë 日本')],
  ['emoji', 'GET', site, site + api + '?query=' + encodeURIComponent('🎉x')],
  ['utf-16 name order', 'GET', site, site + api + '?' + encodeURIComponent('\uFF5E') + '=1&' + encodeURIComponent('\u{1F389}') + '=2'],
  ['repeated names', 'GET', site, site + api + '?expand=b&expand=a&expand=c'],
  ['repeated names with commas', 'GET', site, site + api + '?x=b%2Cc&x=a'],
  ['empty value', 'GET', site, site + api + '?query=&limit=5'],
  ['name without value', 'GET', site, site + api + '?flag'],
  ['jwt excluded', 'GET', site, site + api + '?jwt=abc.def.ghi&limit=5'],
  ['name needing escapes', 'GET', site, site + api + '?a%20b=1&A=2&_=3'],
  ['upper and lower names', 'GET', site, site + api + '?b=1&B=2&a=3'],
  ['trailing slash', 'GET', site, site + api + '/'],
  ['root path', 'GET', site, site + '/'],
  ['no path', 'GET', site, site],
  ['context path', 'GET', dc, dc + api + '?limit=10'],
  ['context path with trailing slash', 'DELETE', dc, dc + api + '/'],
  ['context path only', 'GET', dc, dc],
  ['ampersand in path', 'GET', site, site + '/rest/servicedeskapi/servicedesk/a&b/customer'],
  ['escaped path segment', 'GET', site, site + '/rest/servicedeskapi/servicedesk/1%2F..%2Fx/customer'],
  ['lower-case method', 'post', site, site + '/rest/servicedeskapi/customer?strictConflictStatusCode=true'],
  ['create', 'POST', site, site + '/rest/servicedeskapi/customer'],
  ['remove', 'DELETE', site, site + api],
  ['invalid utf-8 in value', 'GET', site, site + api + '?query=caf%E9'],
  ['invalid utf-8 in name', 'GET', site, site + api + '?caf%E9=1'],
  ['truncated utf-8 sequence', 'GET', site, site + api + '?query=%E6%97'],
  ['overlong utf-8', 'GET', site, site + api + '?query=%C0%AF'],
  ['malformed escape', 'GET', site, site + api + '?query=100%ZZ&limit=5'],
  ['percent at the end', 'GET', site, site + api + '?query=50%'],
  ['empty pieces and names', 'GET', site, site + api + '?&a=1&&=2&b'],
  ['plus in a name', 'GET', site, site + api + '?a+b=c+d'],
  ['four-byte and surrogate escapes', 'GET', site, site + api + '?q=%F0%9F%8E%89%ED%A0%80'],
];

const out = cases.map(([name, method, baseUrl, url]) => {
  const req = jwt.fromMethodAndUrl(method, url);
  return {
    name,
    method,
    baseUrl,
    url,
    canonical: jwt.createCanonicalRequest(req, false, baseUrl),
    qsh: jwt.createQueryStringHash(req, false, baseUrl),
  };
});
process.stdout.write(JSON.stringify({ generator: 'atlassian-jwt@2.0.3', vectors: out }, null, 2) + '\n');
