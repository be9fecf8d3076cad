(function(){
"use strict";
var data=JSON.parse(document.getElementById("data").textContent);
var NS="http://www.w3.org/2000/svg",svg=document.getElementById("graph"),
 view=document.getElementById("view"),tip=document.getElementById("tip");
function el(name,attrs,parent){var e=document.createElementNS(NS,name);
 for(var k in attrs)e.setAttribute(k,attrs[k]);if(parent)parent.appendChild(e);return e;}
function h(name,text,parent,cls){var e=document.createElement(name);
 if(text!==undefined&&text!==null)e.textContent=String(text);if(cls)e.className=cls;
 if(parent)parent.appendChild(e);return e;}
function marks(n){return n.marks&&n.marks.length?" ("+n.marks.join(", ")+")":"";}
var byId={},scale=90,tx=0,ty=0,zoom=1;
data.nodes.forEach(function(n){byId[n.id]=n;n.px=n.x*scale*2.4;n.py=-n.y*scale*1.3;});
var defs=svg.querySelector("defs");
Object.keys(data.edge_styles).forEach(function(r){var s=data.edge_styles[r];
 var m=el("marker",{id:"arrow-"+r,viewBox:"0 0 10 10",refX:"10",refY:"5",markerWidth:"10",
  markerHeight:"10",markerUnits:"userSpaceOnUse",orient:"auto-start-reverse"},defs);
 el("path",{d:"M0,0L10,5L0,10z",fill:s[0]},m);});
var edgeLayer=el("g",{},view),nodeLayer=el("g",{},view);
data.edges.forEach(function(e){var s=data.edge_styles[e.relation]||data.edge_styles.cites;
 e.el=el("path",{"class":"edge",stroke:s[0],"stroke-width":s[1],
  "stroke-dasharray":s[2]==="dashed"?"6 4":(s[2]==="dotted"?"2 3":"none"),
  "marker-end":"url(#arrow-"+(data.edge_styles[e.relation]?e.relation:"cites")+")"},edgeLayer);
 var t=el("title",{},e.el);t.textContent=e.relation+(e.reason?": "+e.reason:"")+
  (e.sources&&e.sources.length?" ("+e.sources.join(", ")+")":"");});
data.nodes.forEach(function(n){var g=el("g",{"class":"node"},nodeLayer);n.el=g;
 var r=n.focus?16:9;n.r=r;
 el("circle",{r:r,fill:n.stub?"#fff":n.colour,stroke:n.focus?"#000":(n.stub?n.colour:"#333"),
  "stroke-width":n.focus?3:(n.stub?2.5:1)},g);
 if(n.mark==="RETRACTED"){el("path",{d:"M-7,-7L7,7M7,-7L-7,7",stroke:"#b00020",
  "stroke-width":3},g);}
 var label=el("text",{x:0,y:-(r+6),"text-anchor":"middle","font-weight":n.focus?"bold":"normal",
  fill:n.mark?"#b00020":"#111"},g);
 label.textContent=n.label+marks(n);
 g.addEventListener("mouseenter",function(ev){tip.style.display="block";tip.textContent="";
  h("b",n.label+marks(n),tip);h("div",n.title||"(no title)",tip);
  h("div",(n.study_design||"design unknown")+(n.doi?" · "+n.doi:""),tip);});
 g.addEventListener("mousemove",function(ev){var box=svg.getBoundingClientRect(),
  x=ev.clientX-box.left,y=ev.clientY-box.top;
  tip.style.left=(x+tip.offsetWidth+20>box.width?x-tip.offsetWidth-14:x+14)+"px";
  tip.style.top=(y+tip.offsetHeight+20>box.height?y-tip.offsetHeight-14:y+14)+"px";});
 g.addEventListener("mouseleave",function(){tip.style.display="none";});
 g.addEventListener("mousedown",function(ev){ev.stopPropagation();drag={node:n,x:ev.clientX,
  y:ev.clientY,moved:false};});});
function place(){data.nodes.forEach(function(n){n.el.setAttribute("transform",
  "translate("+n.px+","+n.py+")");});
 data.edges.forEach(function(e){var a=byId[e.source],b=byId[e.target];
  var f=e.bend,mx=(a.px+b.px)/2+f*(b.py-a.py),my=(a.py+b.py)/2-f*(b.px-a.px);
  /* leave and enter each circle along the curve's own tangent: the arrowhead meets the
     circle's edge, not the label above it */
  var ux=a.px-mx,uy=a.py-my,du=Math.sqrt(ux*ux+uy*uy)||1,
   vx=b.px-mx,vy=b.py-my,dv=Math.sqrt(vx*vx+vy*vy)||1;
  var x1=a.px-ux/du*a.r,y1=a.py-uy/du*a.r,x2=b.px-vx/dv*(b.r+2),y2=b.py-vy/dv*(b.r+2);
  e.el.setAttribute("d","M"+x1+","+y1+"Q"+mx+","+my+" "+x2+","+y2);});}
function frame(){view.setAttribute("transform","translate("+tx+","+ty+") scale("+zoom+")");}
function fit(){var xs=data.nodes.map(function(n){return n.px;}),
  ys=data.nodes.map(function(n){return n.py;});
 var w=svg.clientWidth||900,h=svg.clientHeight||600;
 var minx=Math.min.apply(null,xs)-70,maxx=Math.max.apply(null,xs)+60,
  miny=Math.min.apply(null,ys)-50,maxy=Math.max.apply(null,ys)+30;
 zoom=Math.min(1.6,Math.min(w/(maxx-minx+80),h/(maxy-miny+80)));
 if(zoom<0.6){zoom=0.6;}  /* a tall graph: readable labels, start at the top, pan for more */
 tx=(w-(maxx+minx)*zoom)/2;ty=(h-(maxy+miny)*zoom)/2;
 if((maxy-miny)*zoom>h){ty=40-miny*zoom;}
 if((maxx-minx)*zoom>w){tx=40-minx*zoom;}
 frame();}
var drag=null;
svg.addEventListener("mousedown",function(ev){drag={pan:true,x:ev.clientX,y:ev.clientY};
 svg.style.cursor="grabbing";});
window.addEventListener("mousemove",function(ev){if(!drag)return;
 var dx=ev.clientX-drag.x,dy=ev.clientY-drag.y;drag.x=ev.clientX;drag.y=ev.clientY;
 if(drag.pan){tx+=dx;ty+=dy;frame();}else{drag.moved=true;drag.node.px+=dx/zoom;
  drag.node.py+=dy/zoom;place();}});
window.addEventListener("mouseup",function(){if(drag&&drag.node&&!drag.moved)select(drag.node);
 drag=null;svg.style.cursor="grab";});
svg.addEventListener("wheel",function(ev){ev.preventDefault();
 var f=ev.deltaY<0?1.15:1/1.15,r=svg.getBoundingClientRect(),
  mx=ev.clientX-r.left,my=ev.clientY-r.top;
 tx=mx-(mx-tx)*f;ty=my-(my-ty)*f;zoom*=f;frame();},{passive:false});
function select(n,quiet){var near={};near[n.id]=true;
 data.edges.forEach(function(e){if(e.source===n.id)near[e.target]=true;
  if(e.target===n.id)near[e.source]=true;});
 if(!quiet){data.nodes.forEach(function(m){m.el.classList.toggle("dim",!near[m.id]);});
  data.edges.forEach(function(e){e.el.classList.toggle("dim",
   e.source!==n.id&&e.target!==n.id);});}
 var rows=[["Role",n.role],["Design",n.study_design||"unknown"],["Year",n.year],
  ["Journal / site",n.journal],["DOI",n.doi],["PMID",n.pmid],["Status",n.status]];
 var box=document.getElementById("details");box.textContent="";
 h("h2","Selected work",box);
 (n.marks||[]).forEach(function(m){h("div",m,box,"mark");});
 h("b",n.label,h("div",null,box));h("div",n.title||"(no title)",box);
 var dl=h("dl",null,box);
 rows.forEach(function(r){if(r[1]!==null&&r[1]!==undefined&&r[1]!==""){
  h("dt",r[0],dl);h("dd",r[1],dl);}});
 if(n.link){var a=h("a",n.link,h("p",null,box));a.href=n.link;a.rel="noopener noreferrer";}
 var all=h("a","show all",h("p",null,box));all.href="#";
 all.addEventListener("click",function(ev){ev.preventDefault();clear();});}
function clear(){data.nodes.forEach(function(m){m.el.classList.remove("dim");});
 data.edges.forEach(function(e){e.el.classList.remove("dim");});
 document.getElementById("details").textContent="";}
document.getElementById("q").addEventListener("input",function(){
 var q=this.value.toLowerCase();if(!q){clear();return;}
 data.nodes.forEach(function(n){var hay=(n.label+" "+(n.title||"")+" "+(n.doi||""))
  .toLowerCase();n.el.classList.toggle("dim",hay.indexOf(q)<0);});
 data.edges.forEach(function(e){e.el.classList.add("dim");});});
var legend=document.getElementById("legend");
data.legend.forEach(function(item){var d=h("div",null,legend),dot=h("span",null,d,"dot");
 dot.style.background=item[1];d.appendChild(document.createTextNode(item[0]));});
Object.keys(data.edge_styles).forEach(function(r){if(!data.edges.some(function(e){
  return e.relation===r;}))return;var s=data.edge_styles[r],d=h("div",null,legend);
 var icon=el("svg",{width:"28",height:"10"},d);icon.style.verticalAlign="middle";
 el("line",{x1:"0",y1:"5",x2:"28",y2:"5",stroke:s[0],"stroke-width":s[1],
  "stroke-dasharray":s[2]==="dashed"?"6 4":(s[2]==="dotted"?"2 3":"none")},icon);
 d.appendChild(document.createTextNode(" "+r));});
place();fit();window.addEventListener("resize",fit);
select(byId[data.focus],true);
})();
