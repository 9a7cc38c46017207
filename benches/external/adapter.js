// The njs adapter of tools/load-bench: what an integrator would write in
// nginx instead of authbridge. It answers GET /rest/chat/client/id/{token}
// with the card authbridge builds with mappings/generic-bank.toml (same
// fields, values, type conversions and byte length) and the same errors for
// a CRM 404 or failure. No cache, retries, breaker or limits: the bench
// compares the per-request cost of fetch + map + serialise.
// Written for njs 0.7.9 (Debian bookworm): arrows, `??` and async/await work;
// destructuring, `?.` and spread do not. Its objects do not keep insertion
// order, so keys come out in another order than authbridge's (the bench
// compares parsed JSON). ngx.fetch opens a new CRM connection per call (fetch
// keepalive came in njs 0.9.2). The CRM's base URL is nginx's $crm.

// Conversions to the card's JSON types (docs/mapping.md, "Types and
// coercion"); null and absent give undefined, which JSON.stringify leaves out.
function str(v) {
    if (v === null || v === undefined) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new Error('not a string');
}
function int(v) {
    if (v === null || v === undefined) return undefined;
    if (Number.isInteger(v)) return v;
    if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return parseInt(v, 10);
    throw new Error('not an integer');
}
const TRUE = ['true', '1', 'yes', 'y'], FALSE = ['false', '0', 'no', 'n'];
function bool(v) {
    if (v === null || v === undefined) return undefined;
    const s = typeof v === 'object' ? '' : String(v).toLowerCase();
    if (TRUE.indexOf(s) >= 0) return true;
    if (FALSE.indexOf(s) >= 0) return false;
    throw new Error('not a boolean');
}
function date(v) {
    if (v === null || v === undefined) return undefined;
    if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}(T.*)?$/.test(v)) return v.slice(0, 10);
    throw new Error('not a date');
}
function need(v, name) { if (v === undefined) throw new Error(name + ' has no value'); return v; }
// An object or list with nothing in it is left out, as authbridge does.
const obj = (o) => (Object.keys(o).some((k) => o[k] !== undefined) ? o : undefined);
const list = (a) => (a.length ? a : undefined);

function card(crm) {
    const c = crm.client || {}, b = c.branch || {}, ct = c.contacts || {};
    const lines = [{ name: 'Segment', value: str(c.segment) }, { name: 'Personal manager', value: str(c.manager) }];
    return { client: {
        id: need(str(c.id), 'client.id'), name: need(str(c.fullName), 'client.name'),
        surname: need(str(c.lastName), 'client.surname'), firstName: need(str(c.firstName), 'client.firstName'),
        patronymic: str(c.middleName) ?? '', type: str(c.typeCode) ?? '0', enabled: bool(c.active) ?? false,
        birthdate: date(c.birthDate), extRef: str(c.absId), cardRef: str(c.cardSystemId),
        branch: obj({ id: int(b.id), extRef: str(b.absCode), bik: str(b.bik), name: str(b.name) }),
        crmURL: str(c.crmUrl), inn: str(c.inn), shortName: str(c.shortName),
        fieldList: list(lines.filter((l) => l.value !== undefined)),
        contacts: obj({ phone: str(ct.mobile ?? ct.phone), email: str(ct.email),
                        telegramUserName: str(ct.telegram), whatsappPhone: str(ct.whatsapp) }),
        secretWord: str(c.codeWord)
    }, companyList: list((crm.companies || []).map((x, i) => ({
        id: need(int(x.id), 'companyList[' + i + '].id'), name: str(x.fullName), type: str(x.typeCode),
        enabled: bool(x.active), extRef: str(x.absCode), inn: str(x.inn), kpp: str(x.kpp),
        resident: bool(x.resident), phone: str(x.phone), shortName: str(x.shortName),
        internationalName: str(x.intlName), ogrn: str(x.ogrn), ogrnDate: date(x.ogrnDate),
        internationalAddress: str(x.intlAddress)
    }))) };
}

function answer(r, status, body) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(body));
}
const fail = (r, status, code, text) => answer(r, status, { errorCode: code, errorText: text });

async function client(r) {
    const token = r.uri.slice('/rest/chat/client/id/'.length);
    let reply, crm, body;
    try {
        reply = await ngx.fetch(r.variables.crm + '/api/v1/sessions/' + encodeURIComponent(token) + '/client');
    } catch (e) { return fail(r, 502, '1005', 'CRM unreachable'); }
    if (reply.status === 404) return fail(r, 404, '1001', 'Client not found');
    if (reply.status !== 200) return fail(r, 502, '1006', 'CRM answered status ' + reply.status);
    try { crm = await reply.json(); } catch (e) { return fail(r, 502, '1007', 'CRM answer is not JSON'); }
    try { body = card(crm); } catch (e) { return fail(r, 500, '1003', 'mapping failed: ' + e.message); }
    answer(r, 200, body);
}

export default { client };
