#!/usr/bin/env python3
# The engine's public names: what engine/src/lib.rs re-exports, plus the
# top-level public items of its public modules. `-v` lists them.
# Run from the repository root.
import re,sys
src=open('engine/src/lib.rs').read()
names=[]
for m in re.finditer(r'pub use ([^;]+);',src,re.S):
    body=m.group(1)
    if '{' in body:
        inner=body[body.index('{')+1:body.rindex('}')]
        names+= [n.strip().split(' as ')[-1] for n in inner.split(',') if n.strip()]
    else:
        names.append(body.split('::')[-1].split(' as ')[-1].strip())
for mod in re.findall(r'^pub mod (\w+);',src,re.M):
    msrc=open(f'engine/src/{mod}.rs').read()
    for it in re.findall(r'^pub (?:async )?(?:fn|struct|enum|trait|const|type|static) (\w+)',msrc,re.M):
        # An item also re-exported at the root is one name, not two.
        if it not in names:
            names.append(f'{mod}::{it}')
print(len(names)); 
if len(sys.argv)>1: print('\n'.join(names))
